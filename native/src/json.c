#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include "json.h"

struct cur {
  const char *p;
  int depth;
};

static void ws(struct cur *c) {
  while (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t') c->p++;
}

static json *mk(enum json_type t) {
  json *v = calloc(1, sizeof *v);
  if (v) v->type = t;
  return v;
}

static int hex4(const char *p, unsigned *out) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char ch = p[i];
    v <<= 4;
    if (ch >= '0' && ch <= '9') v |= (unsigned)(ch - '0');
    else if (ch >= 'a' && ch <= 'f') v |= (unsigned)(ch - 'a' + 10);
    else if (ch >= 'A' && ch <= 'F') v |= (unsigned)(ch - 'A' + 10);
    else return -1;
  }
  *out = v;
  return 0;
}

static char *parse_string(struct cur *c) {
  if (*c->p != '"') return NULL;
  c->p++;
  size_t cap = 32, n = 0;
  char *out = malloc(cap);
  if (!out) return NULL;
  for (;;) {
    char ch = *c->p++;
    if (!ch) goto bad;
    if (ch == '"') break;
    unsigned cp = (unsigned char)ch;
    if (ch == '\\') {
      char e = *c->p++;
      switch (e) {
        case '"': cp = '"'; break;
        case '\\': cp = '\\'; break;
        case '/': cp = '/'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u': {
          if (hex4(c->p, &cp) < 0) goto bad;
          c->p += 4;
          if (cp >= 0xd800 && cp < 0xdc00 && c->p[0] == '\\' && c->p[1] == 'u') {
            unsigned lo;
            if (hex4(c->p + 2, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000) {
              cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
              c->p += 6;
            }
          }
          break;
        }
        default: goto bad;
      }
    }
    if (n + 5 >= cap) {
      cap *= 2;
      char *g = realloc(out, cap);
      if (!g) goto bad;
      out = g;
    }
    if (ch != '\\' || cp < 0x80) out[n++] = (char)cp;
    else if (cp < 0x800) out[n++] = (char)(0xc0 | (cp >> 6)), out[n++] = (char)(0x80 | (cp & 0x3f));
    else if (cp < 0x10000) out[n++] = (char)(0xe0 | (cp >> 12)), out[n++] = (char)(0x80 | ((cp >> 6) & 0x3f)), out[n++] = (char)(0x80 | (cp & 0x3f));
    else out[n++] = (char)(0xf0 | (cp >> 18)), out[n++] = (char)(0x80 | ((cp >> 12) & 0x3f)), out[n++] = (char)(0x80 | ((cp >> 6) & 0x3f)), out[n++] = (char)(0x80 | (cp & 0x3f));
  }
  out[n] = 0;
  return out;
bad:
  free(out);
  return NULL;
}

static json *parse_value(struct cur *c);

static int push(json *v, char *key, json *item) {
  char **keys = v->keys;
  if (v->type == J_OBJ) {
    keys = realloc(v->keys, sizeof(char *) * (size_t)(v->n + 1));
    if (!keys) return -1;
    v->keys = keys;
  }
  json **items = realloc(v->items, sizeof(json *) * (size_t)(v->n + 1));
  if (!items) return -1;
  v->items = items;
  if (v->type == J_OBJ) v->keys[v->n] = key;
  v->items[v->n++] = item;
  return 0;
}

static json *parse_value(struct cur *c) {
  if (++c->depth > 32) return NULL;
  ws(c);
  json *v = NULL;
  char ch = *c->p;
  if (ch == '{' || ch == '[') {
    int obj = ch == '{';
    v = mk(obj ? J_OBJ : J_ARR);
    if (!v) return NULL;
    c->p++;
    ws(c);
    if (*c->p == (obj ? '}' : ']')) {
      c->p++;
      goto done;
    }
    for (;;) {
      char *key = NULL;
      if (obj) {
        ws(c);
        key = parse_string(c);
        if (!key) goto bad;
        ws(c);
        if (*c->p++ != ':') {
          free(key);
          goto bad;
        }
      }
      json *item = parse_value(c);
      if (!item || push(v, key, item) < 0) {
        free(key);
        json_free(item);
        goto bad;
      }
      ws(c);
      if (*c->p == ',') {
        c->p++;
        continue;
      }
      if (*c->p == (obj ? '}' : ']')) {
        c->p++;
        break;
      }
      goto bad;
    }
  } else if (ch == '"') {
    v = mk(J_STR);
    if (!v || !(v->str = parse_string(c))) goto bad;
  } else if (!strncmp(c->p, "true", 4) || !strncmp(c->p, "false", 5)) {
    v = mk(J_BOOL);
    if (!v) return NULL;
    v->num = c->p[0] == 't';
    c->p += c->p[0] == 't' ? 4 : 5;
  } else if (!strncmp(c->p, "null", 4)) {
    v = mk(J_NULL);
    c->p += 4;
  } else if (ch == '-' || (ch >= '0' && ch <= '9')) {
    char *end;
    v = mk(J_NUM);
    if (!v) return NULL;
    v->num = strtod(c->p, &end);
    if (end == c->p) goto bad;
    c->p = end;
  } else {
    return NULL;
  }
done:
  c->depth--;
  return v;
bad:
  json_free(v);
  return NULL;
}

json *json_parse(const char *text) {
  struct cur c = {text, 0};
  json *v = parse_value(&c);
  if (!v) return NULL;
  ws(&c);
  if (*c.p) {
    json_free(v);
    return NULL;
  }
  return v;
}

void json_free(json *v) {
  if (!v) return;
  for (int i = 0; i < v->n; i++) {
    if (v->keys) free(v->keys[i]);
    json_free(v->items[i]);
  }
  free(v->keys);
  free(v->items);
  free(v->str);
  free(v);
}

json *json_get(const json *obj, const char *key) {
  if (!obj || obj->type != J_OBJ) return NULL;
  for (int i = 0; i < obj->n; i++)
    if (!strcmp(obj->keys[i], key)) return obj->items[i];
  return NULL;
}

const char *json_str(const json *obj, const char *key) {
  json *v = json_get(obj, key);
  return v && v->type == J_STR ? v->str : NULL;
}

double json_num(const json *obj, const char *key, double fallback) {
  json *v = json_get(obj, key);
  return v && (v->type == J_NUM || v->type == J_BOOL) ? v->num : fallback;
}

long json_escape(char *out, size_t cap, size_t len, const char *s) {
  static const char hex[] = "0123456789abcdef";
#define ADD(ch)                      \
  do {                               \
    if (len + 1 >= cap) return -1;   \
    out[len++] = (char)(ch);         \
  } while (0)
  ADD('"');
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') {
      ADD('\\');
      ADD(ch);
    } else if (ch < 0x20) {
      ADD('\\');
      ADD('u');
      ADD('0');
      ADD('0');
      ADD(hex[ch >> 4]);
      ADD(hex[ch & 15]);
    } else {
      ADD(ch);
    }
  }
  ADD('"');
  out[len] = 0;
  return (long)len;
#undef ADD
}

unsigned char *base64_decode(const char *s, size_t *len) {
  size_t n = strlen(s);
  unsigned char *out = malloc(n / 4 * 3 + 3);
  if (!out) return NULL;
  uint32_t acc = 0;
  int bits = 0;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    int v;
    if (ch >= 'A' && ch <= 'Z') v = ch - 'A';
    else if (ch >= 'a' && ch <= 'z') v = ch - 'a' + 26;
    else if (ch >= '0' && ch <= '9') v = ch - '0' + 52;
    else if (ch == '+') v = 62;
    else if (ch == '/') v = 63;
    else if (ch == '=') break;
    else continue;
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (unsigned char)(acc >> bits);
    }
  }
  *len = o;
  return out;
}
