// A small JSON reader (for the runtime wire's replies and the TETHER_RUNTIME variable) and a string
// escaper for the requests the supervisor writes.
#ifndef TETHER_JSON_H
#define TETHER_JSON_H
#include <stddef.h>

enum json_type { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };
typedef struct json {
  enum json_type type;
  double num;   /* J_NUM, J_BOOL (0/1) */
  char *str;    /* J_STR (NUL-terminated, decoded) */
  int n;        /* J_ARR, J_OBJ: number of items */
  char **keys;  /* J_OBJ */
  struct json **items;
} json;

json *json_parse(const char *text);
void json_free(json *v);
/** The member `key` of an object, or NULL. */
json *json_get(const json *obj, const char *key);
const char *json_str(const json *obj, const char *key);
double json_num(const json *obj, const char *key, double fallback);
/** Appends s as a JSON string (with quotes) to out (capacity cap); returns the new length or -1. */
long json_escape(char *out, size_t cap, size_t len, const char *s);
/** Decodes base64 in place-independent fashion; returns a malloc'd buffer and its length. */
unsigned char *base64_decode(const char *s, size_t *len);
#endif
