/*
 * main.c - omnify-edge: the HTTP edge as its own process.
 */
#include "edge.h"

int main(int argc, char **argv) {
        return edge_main(argc, argv);
}
