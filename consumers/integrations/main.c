/*
 * main.c - omnify-integrations: the integrations group as its own process.
 */
#include "registry.h"
#include "service.h"

int main(int argc, char **argv) {
        return service_main(&group_integrations, argc, argv);
}
