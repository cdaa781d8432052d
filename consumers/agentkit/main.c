/*
 * main.c - omnify-agentkit: the agentkit group as its own process.
 */
#include "registry.h"
#include "service.h"

int main(int argc, char **argv) {
        return service_main(&group_agentkit, argc, argv);
}
