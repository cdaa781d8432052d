/*
 * main.c - omnify-ml: the ml group as its own process.
 */
#include "registry.h"
#include "service.h"

int main(int argc, char **argv) {
        return service_main(&group_ml, argc, argv);
}
