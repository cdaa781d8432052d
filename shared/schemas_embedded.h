/*
 * schemas_embedded.h - the schema files compiled into every binary.
 * Generated at build time from schemas/ by cmake/embed_schemas.cmake.
 */
#ifndef OMNIFY_SCHEMAS_EMBEDDED_H
#define OMNIFY_SCHEMAS_EMBEDDED_H

#include <stddef.h>

#include "schema.h"

extern const schema_source_t schemas_embedded[];
extern const size_t schemas_embedded_count;
/* schemas/topics.json: every topic with partitions, retention, cleanup. */
extern const schema_source_t topics_embedded;

#endif
