/*
 * topics.h - `omnify topics plan|apply`: schemas/topics.json against the
 * cluster, through librdkafka's admin API.
 */
#ifndef OMNIFY_TOPICS_H
#define OMNIFY_TOPICS_H

int topics_main(int argc, char **argv);

#endif
