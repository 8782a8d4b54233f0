/* imports.h: the module specifiers an ES module's source names, found without a JS engine, so
 * that nano-dp can watch the modules a nano.json app imports and tell when one of them changed
 * (config.c: nano_app_config_find_imports). A scan, not a parse: it skips comments, strings,
 * template literals and (by the usual heuristic) regular expression literals, and reports the
 * string literal after `from`, after `import`, and inside `import(` when that string is the
 * whole argument. It may report too much (`x.import("./y")`), never crashes or reads past len,
 * and misses what only running the code can tell (`import(name)`). Pure; any thread. */
#ifndef NANO_IMPORTS_H
#define NANO_IMPORTS_H

#include <stdbool.h>
#include <stddef.h>

/* found: called with each specifier (src bytes between the quotes, borrowed for the call; a
 * specifier with a backslash escape or a line break is skipped). Return false to stop. */
typedef bool (*nano_import_found_fn)(void *ud, const char *spec, size_t len);

/* nano_imports_scan: calls found for every specifier of src[0..len), in source order:
 *   import x from "./a.js"   import "./b.js"   export * from './c.js'   import("./d.js")
 * src need not be NUL-terminated. */
void nano_imports_scan(const char *src, size_t len, nano_import_found_fn found, void *ud);

/* nano_import_is_relative: whether spec names a file beside the importer, as nano-dp's module
 * loader resolves it: "./", "../", "/" or "file://" (bare names and "nano:" are not files). */
bool nano_import_is_relative(const char *spec, size_t len);

#endif
