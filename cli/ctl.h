/* ctl.h: nanoctl's internals (docs/nanoctl.md), shared by its files: main.c
 * (the process), run.c (global options, help, dispatch), client.c (connection config and the
 * NNG REQ client), output.c (tables, errors), and one file per command group (apps.c, env.c,
 * secret.c, info.c, apply.c).
 *
 * ctl_run is the whole program minus the process, so tests drive it with their own streams
 * and a recording call function instead of a socket. Single-threaded. */
#ifndef CTL_H
#define CTL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"
#include "opt.h"

/* Exit codes (docs/nanoctl.md#output-and-exit-codes). */
#define CTL_EXIT_OK 0
#define CTL_EXIT_FAIL 1  /* runtime failure: cannot connect, timeout, the server refused */
#define CTL_EXIT_USAGE 2 /* bad usage or input, found here or by the server */

#define CTL_EREMOTE (-20001) /* the server answered with an error (see ctl_remote_error) */
#define CTL_DEFAULT_URL "tcp://127.0.0.1:7071"
#define CTL_DEFAULT_TIMEOUT_MS 10000

/* An error the server sent back, or (for local failures) just a message. */
typedef struct ctl_remote_error {
    char code[48];
    char message[512];
    char field[128];
} ctl_remote_error;

/* ctl_call_fn: runs op with args (borrowed). Returns 0 and *result (returned owned);
 * CTL_EREMOTE with rerr filled when the server answered with an error; or another negative
 * code with rerr->message saying what failed locally (connect, timeout, bad reply). */
typedef int (*ctl_call_fn)(void *ud, const char *op, json_t *args, json_t **result,
                           ctl_remote_error *rerr);

typedef struct ctl_io {
    FILE *out;        /* results */
    FILE *err;        /* one-line errors */
    FILE *in;         /* secret values (secret set) */
    ctl_call_fn call; /* NULL: connect to nanocp with the resolved connection settings */
    void *call_ud;
} ctl_io;

/* ctl_run: parses argv (argv[0] is the program name) and runs the command. Returns the exit
 * code. Every error is one line on io->err: `nanoctl: <what>: <why>`. */
int ctl_run(int argc, char **argv, ctl_io *io);

/* --- connection settings (client.c) -------------------------------------------------------
 * ctl_conn_resolve: the URL and token to use. URL: flag_url, else env_url (NANO_CP), else the
 * config file's "cp", else CTL_DEFAULT_URL. Token: flag_token, else the first line of
 * flag_token_file, else env_token (NANO_TOKEN), else the config file's "token" or the first
 * line of its "token_file"; else none (NULL). config_path may be NULL (no file); a file that
 * is named but unreadable or malformed is an error. Returns 0, or a negative code with err
 * naming the file. */
typedef struct ctl_conn {
    char *url;    /* owned */
    char *token;  /* owned; NULL when none was configured */
    char *cacert; /* owned, tls+tcp://: the CA that signed nanocp's certificate (else NULL) */
    char *cert;   /* owned, tls+tcp://: a client certificate and its key (both or neither) */
    char *key;
} ctl_conn;

/* The TLS flags (--cacert, --cert, --key; NULL when not given), ahead of NANO_CACERT and the
 * config file's "cacert", "cert", "key". */
typedef struct ctl_tls_flags {
    const char *cacert, *cert, *key;
} ctl_tls_flags;

int ctl_conn_resolve(const char *flag_url, const char *flag_token, const char *flag_token_file,
                     const char *config_path, const char *env_url, const char *env_token,
                     const ctl_tls_flags *tls, const char *env_cacert, ctl_conn *out,
                     nano_error *err);
void ctl_conn_fini(ctl_conn *c);
/* ctl_conn_check_tls: the TLS files of c read and checked as the client would (a usage error
 * before any connection: a missing --cacert, a file that is not PEM, --cert without --key,
 * TLS files for a URL that is not tls+tcp://). */
int ctl_conn_check_tls(const ctl_conn *c, nano_error *err);

/* ctl_conn_split_urls: c->url as a list of addresses (nanocp replicas: "URL,URL,..."), each
 * checked with c's TLS files as ctl_conn_check_tls does; out gets owned copies. Returns how
 * many (1..max), or a negative code with err (an empty item, more than max). */
#define CTL_MAX_URLS 8
int ctl_conn_split_urls(const ctl_conn *c, char **out, size_t max, nano_error *err);

/* ctl_config_default_path: $XDG_CONFIG_HOME/nano/nanoctl.json, else
 * $HOME/.config/nano/nanoctl.json, written into buf; NULL when neither variable is set. */
const char *ctl_config_default_path(char *buf, size_t cap);

/* --- the NNG client (client.c) ------------------------------------------------------------
 * ctl_client_open: a REQ socket connected to url (tcp://, ipc://), with every send and
 * receive bounded by timeout_ms. Connecting itself is bounded by the same timeout and fails
 * at once when refused. Returns 0, or a negative code with err naming url and why. */
typedef struct ctl_client ctl_client;

int ctl_client_open(const char *url, const char *token, int timeout_ms, ctl_client **out,
                    nano_error *err);
/* ctl_client_open_tls: ctl_client_open for a tls+tcp:// url too: the server's certificate is
 * verified against c->cacert (and must name the URL's host); c->cert/c->key are presented when
 * given. For other URLs, TLS files are an error (they would be ignored). */
int ctl_client_open_conn(const ctl_conn *c, int timeout_ms, ctl_client **out, nano_error *err);
/* ctl_client_call: one request/reply (a ctl_call_fn with the client as ud). */
int ctl_client_call(void *client, const char *op, json_t *args, json_t **result,
                    ctl_remote_error *rerr);
void ctl_client_close(ctl_client *cl); /* NULL-safe */

/* --- what command files share (run.c, output.c) -------------------------------------------- */

typedef struct ctl_ctx {
    ctl_io *io;
    bool is_json;   /* --json: print results as JSON */
    char what[160]; /* the command, for error lines ("apps status api") */
    bool has_token; /* a token was configured (for the unauthorized hint) */
} ctl_ctx;

/* ctl_call: calls op with args (taken). Returns CTL_EXIT_OK and *result (owned; may be NULL
 * to drop it), or prints the error line and returns CTL_EXIT_FAIL / CTL_EXIT_USAGE. */
int ctl_call(ctl_ctx *ctx, const char *op, json_t *args, json_t **result);

/* ctl_usage: prints `nanoctl: <what>: <why>` and returns CTL_EXIT_USAGE.
 * ctl_fail: the same, returning CTL_EXIT_FAIL. */
int ctl_usage(ctl_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int ctl_fail(ctl_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ctl_set_what(ctl_ctx *ctx, int argc, char **argv, int n_words);

/* ctl_opt: whether argv[*i] is option name, as "--name VALUE" or "--name=VALUE"
 * (nano_opt_value, shared/opt.h). Returns 1 (value set; *i advanced past a separate value), 0
 * (another argument), or -1 after printing a usage error (the value is missing). Whether an
 * argument is an option at all: nano_opt_is_option. */
int ctl_opt(ctl_ctx *ctx, int argc, char **argv, int *i, const char *name, const char **value);
/* ctl_parse_u64: a non-negative integer argument; usage error naming what on failure. */
int ctl_parse_u64(ctl_ctx *ctx, const char *what, const char *s, uint64_t *out);

/* ctl_print_json: the value, indented, on io->out. */
void ctl_print_json(ctl_ctx *ctx, const json_t *v);
/* ctl_scalar: a JSON scalar as text for a table cell (strings raw; others compact JSON),
 * written into buf. */
const char *ctl_scalar(const json_t *v, char *buf, size_t cap);

/* A table printed with aligned columns. */
typedef struct ctl_table ctl_table;
ctl_table *ctl_table_new(size_t n_cols, const char *const *headers);
void ctl_table_add(ctl_table *t, const char *const *cells); /* copies n_cols cells */
void ctl_table_print(ctl_table *t, FILE *out);              /* and frees t */
/* ctl_print_objects: an array of objects as a table whose columns are the scalar keys of the
 * first object (nested values compact); "(none)" when empty. For results whose shape the
 * client does not know in detail (nodes, per-node states). */
void ctl_print_objects(ctl_ctx *ctx, const json_t *array);

/* --- command groups: argv[0] is the group's word ("apps"), argc >= 1 ----------------------- */
int ctl_cmd_apps(ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_deployments(ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_rollback(ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_env(ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_secret(ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_nodes(ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_audit(ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_version(ctl_ctx *ctx, int argc, char **argv);
int ctl_cmd_apply(ctl_ctx *ctx, int argc, char **argv);

/* Help texts, printed by `nanoctl GROUP --help`. */
extern const char ctl_help_main[];
extern const char ctl_help_apps[];
extern const char ctl_help_env[];
extern const char ctl_help_secret[];
extern const char ctl_help_apply[];
extern const char ctl_help_other[];

#endif
