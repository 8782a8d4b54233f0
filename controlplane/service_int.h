/* service_int.h: what the service's files share (service.c: errors, argument checks, result
 * shapes, logs, dispatch, tokens, open/free; service_apps.c: apps create/update/get/list/
 * remove; service_code.c: deployments and their load check; service_env.c: env, secrets,
 * nodes, audit, version). Not an API: service.h is. The service's thread only. */
#ifndef CP_SERVICE_INT_H
#define CP_SERVICE_INT_H

#include "service.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "alloc.h"
#include "buf.h"
#include "check.h"
#include "config.h"
#include "dotenv.h"
#include "env.h"
#include "file.h"
#include "log.h"
#include "mpjson.h"
#include "msg.h"
#include "secrets.h"
#include "snapshot.h"
#include "sha256.h"
#include "store.h"
#include "token.h"

/* How often a change whose commit conflicts is run (cp_service_call). */
#define CP_SERVICE_TX_ATTEMPTS 12

#ifndef NANO_VERSION
#define NANO_VERSION "0.0.0"
#endif

#define MAX_MODULES 256
#define AUDIT_DEFAULT_LIMIT 100
#define AUDIT_MAX_LIMIT 1000

typedef struct cp_token {
    char name[64];
    unsigned char hash[NANO_TOKEN_DIGEST_BYTES];
} cp_token;

struct cp_service {
    char *data_dir;
    char *checker; /* nano-dp, for the load check of each deployment; NULL: none */
    char *db_path;
    char *token_path;
    char key_source[4096];
    cp_store *st;
    cp_master_key key;
    cp_token *tokens;
    size_t n_tokens;
};

/* Shared between the files (each documented where it is defined). */
json_t *cp_service__app_view(json_t *row);
int cp_service__audit(cp_service *svc, const cp_actor *actor, const char *op, const char *app,
                      json_t *detail, cp_error *err);
int cp_service__check_bundle(cp_service *svc, json_t *app, const char *main, const cp_module *mods,
                             size_t n, nano_error *err);
int cp_service__check_fields(json_t *args, const char *const *allowed, cp_error *err);
/* cp_service__open_app: an app op's prologue: args has only the fields allowed, names an app
 * (*name, borrowed from args) that exists (*app, returned owned; *id). */
int cp_service__open_app(cp_service *svc, json_t *args, const char *const *allowed,
                         const char **name, json_t **app, int64_t *id, cp_error *err);
/* cp_service__check_fields2: every key of args is in allowed or in more (NULL-terminated; more
 * may be NULL), e.g. an op's own fields and an app spec's keys. */
int cp_service__check_fields2(json_t *args, const char *const *allowed, const char *const *more,
                              cp_error *err);
int cp_service__check_required(json_t *required, json_t *kinds, const char *app, cp_error *err);
int cp_service__check_required_now(cp_service *svc, json_t *app, int64_t id, const char *name,
                                   cp_error *err);
json_t *cp_service__deployment_view(json_t *row);
int cp_service__finish_drains(cp_service *svc, bool *changed, cp_error *err);
int cp_service__get_app_name(json_t *args, const char **out, cp_error *err);
int cp_service__get_bool(json_t *args, const char *key, bool *out, cp_error *err);
int cp_service__get_str(json_t *args, const char *key, bool required, const char **out,
                        cp_error *err);
bool cp_service__is_deployed(json_t *app);
int cp_service__load_app(cp_service *svc, const char *name, json_t **app, int64_t *id,
                         cp_error *err);
int cp_service__log_app_put(cp_service *svc, const char *name, cp_error *err);
int cp_service__log_delta(cp_service *svc, const char *op, const char *app, json_t *payload,
                          cp_error *err);
uint64_t cp_service__mono_ms(void);
extern const char *const cp_service__name_only[];
extern const char *const cp_service__no_fields[];
int cp_service__op_apps_create(cp_service *svc, const cp_actor *actor, json_t *args,
                               json_t **result, cp_error *err);
int cp_service__op_apps_deploy(cp_service *svc, const cp_actor *actor, json_t *args,
                               json_t **result, cp_error *err);
int cp_service__op_apps_drain(cp_service *svc, const cp_actor *actor, json_t *args, json_t **result,
                              cp_error *err);
int cp_service__op_apps_get(cp_service *svc, const cp_actor *actor, json_t *args, json_t **result,
                            cp_error *err);
int cp_service__op_apps_list(cp_service *svc, const cp_actor *actor, json_t *args, json_t **result,
                             cp_error *err);
int cp_service__op_apps_remove(cp_service *svc, const cp_actor *actor, json_t *args,
                               json_t **result, cp_error *err);
int cp_service__op_apps_rollback(cp_service *svc, const cp_actor *actor, json_t *args,
                                 json_t **result, cp_error *err);
int cp_service__op_apps_update(cp_service *svc, const cp_actor *actor, json_t *args,
                               json_t **result, cp_error *err);
int cp_service__op_audit_list(cp_service *svc, const cp_actor *actor, json_t *args, json_t **result,
                              cp_error *err);
int cp_service__op_deployments_list(cp_service *svc, const cp_actor *actor, json_t *args,
                                    json_t **result, cp_error *err);
int cp_service__op_env_get(cp_service *svc, const cp_actor *actor, json_t *args, json_t **result,
                           cp_error *err);
int cp_service__op_env_patch(cp_service *svc, const cp_actor *actor, json_t *args, json_t **result,
                             cp_error *err);
int cp_service__op_env_replace(cp_service *svc, const cp_actor *actor, json_t *args,
                               json_t **result, cp_error *err);
int cp_service__op_nodes_list(cp_service *svc, const cp_actor *actor, json_t *args, json_t **result,
                              cp_error *err);
int cp_service__op_nodes_remove(cp_service *svc, const cp_actor *actor, json_t *args,
                                json_t **result, cp_error *err);
int cp_service__op_secrets_delete(cp_service *svc, const cp_actor *actor, json_t *args,
                                  json_t **result, cp_error *err);
int cp_service__op_secrets_list(cp_service *svc, const cp_actor *actor, json_t *args,
                                json_t **result, cp_error *err);
int cp_service__op_secrets_put(cp_service *svc, const cp_actor *actor, json_t *args,
                               json_t **result, cp_error *err);
int cp_service__op_version(cp_service *svc, const cp_actor *actor, json_t *args, json_t **result,
                           cp_error *err);
int cp_service__refuse_draining(json_t *app, const char *name, cp_error *err);
const char *cp_service__shown(const char *s, char *buf, size_t cap);
int cp_service__store_fail(cp_service *svc, int rc, const char *what, cp_error *err);

#endif
