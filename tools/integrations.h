/*
 * integrations.h - `omnify integrations`: maintenance of the integrations
 * group's data (tools/integrations.c).
 */
#ifndef OMNIFY_TOOLS_INTEGRATIONS_H
#define OMNIFY_TOOLS_INTEGRATIONS_H

/* argv[0] is "integrations". Returns the exit status: 0 done, 1 store
 * errors, 2 usage or settings, 3 records left unreadable. */
int integrations_main(int argc, char **argv);

#endif
