/* dotenv.h: parser for .env files (`nano-dp --env-file`, `nanoctl env import`).
 *
 * Grammar, one assignment per line:
 *   [export ] NAME = VALUE        NAME is [A-Za-z_][A-Za-z0-9_]*
 *   VALUE: unquoted (trimmed; ` #` starts a comment), 'single' (literal), "double"
 *   (escapes \n \r \t \\ \" \' \$; other backslashes kept), or `backtick` (literal).
 *   Quoted values may span lines. Blank lines and lines starting with # are ignored.
 *   No variable expansion: "$HOME" stays "$HOME".
 * Later assignments of the same name win (the caller decides; the callback sees each).
 * Pure function; any thread. */
#ifndef NANO_DOTENV_H
#define NANO_DOTENV_H

#include <stddef.h>

#include "error.h"

/* Called once per assignment with NUL-terminated name and value (borrowed for the call).
 * Return 0 to continue, or a negative code to stop parsing with that code. */
typedef int (*nano_dotenv_cb)(void *ud, const char *name, const char *value, size_t value_len,
                              int line);

/* nano_dotenv_parse: parses text[0..len). origin names the input in error messages
 * ("FILE:LINE: what is wrong"). Returns 0, NANO_ESYNTAX with err filled
 * (id "env_file_syntax"), or the callback's code. */
int nano_dotenv_parse(const char *text, size_t len, const char *origin, nano_dotenv_cb cb, void *ud,
                      nano_error *err);

/* nano_env_name_valid: whether name matches [A-Za-z_][A-Za-z0-9_]*. */
int nano_env_name_valid(const char *name, size_t len);

#endif
