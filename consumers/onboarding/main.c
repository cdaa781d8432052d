/*
 * main.c - omnify-onboarding: the onboarding group as its own process.
 */
#include "registry.h"
#include "service.h"

int main(int argc, char **argv) {
        return service_main(&group_onboarding, argc, argv);
}
