/*
 * dlq.h - `omnify dlq list|show|replay|purge GROUP`: look at and mend what a
 * group dead-lettered.
 */
#ifndef OMNIFY_DLQ_H
#define OMNIFY_DLQ_H

int dlq_main(int argc, char **argv);

#endif
