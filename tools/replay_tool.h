/*
 * replay_tool.h - `omnify replay`: rebuild a group's projections from the event
 * log (shared/replay.h), verify that rebuilding is deterministic, look at
 * versions and replays, abort one, drop what is retired.
 */
#ifndef OMNIFY_REPLAY_TOOL_H
#define OMNIFY_REPLAY_TOOL_H

int replay_main(int argc, char **argv);

#endif
