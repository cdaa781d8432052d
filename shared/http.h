/*
 * http.h - small helpers over libmicrohttpd shared by the edge and the ops
 * servers: responses with the security headers every answer carries, and
 * RFC 9457 problems.
 */
#ifndef OMNIFY_HTTP_H
#define OMNIFY_HTTP_H

#include <microhttpd.h>
#include <stddef.h>

#include "schema.h"

/*
 * Queue a response copying body. extra is NULL or a NULL-terminated list of
 * name, value pairs. Adds Content-Type and the security headers.
 */
enum MHD_Result http_send(struct MHD_Connection *conn, unsigned status,
                          const char *content_type, const char *body,
                          size_t len, const char *const *extra);

/*
 * Queue a 200 whose body comes from reader as it is produced (Server-Sent
 * Events: no length, chunked), with the same headers as http_send. reader
 * is called on the connection's thread with cls.
 */
enum MHD_Result http_send_stream(struct MHD_Connection *conn,
                                 const char *content_type,
                                 MHD_ContentReaderCallback reader, void *cls,
                                 const char *const *extra);

/*
 * Queue an application/problem+json answer: {type, title, status, detail,
 * errors?}. report may be NULL; detail may be NULL.
 */
enum MHD_Result http_send_problem(struct MHD_Connection *conn, unsigned status,
                                  const char *title, const char *detail,
                                  const schema_report_t *report,
                                  const char *const *extra);

/* The reason phrase-free title for a status (e.g. 404 -> "Not Found"). */
const char *http_title(unsigned status);

#endif
