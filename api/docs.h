/* docs.h: the machine-readable descriptions osse serves (SPEC §13), built
 * into the binary so that serving them reads no disk.
 *
 * api/openapi.json (OpenAPI 3.1, every route of api/server.c's table) and
 * api/workflow.schema.json (JSON Schema 2020-12 of workflow definitions,
 * SPEC §2) are the one source of each; CMake turns each file into the array
 * below at build time (api/embed.cmake). The bytes are the file's, with a
 * NUL after the last (not counted in the length). */
#ifndef OSSE_API_DOCS_H
#define OSSE_API_DOCS_H

#include <stddef.h>

extern const unsigned char osse_doc_openapi[];
extern const size_t osse_doc_openapi_len;
extern const unsigned char osse_doc_workflow_schema[];
extern const size_t osse_doc_workflow_schema_len;

#endif
