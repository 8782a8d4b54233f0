/* fuzz_imports: shared/imports.c's scan of module source (an app's code is the tenant's).
 * Invariants: every specifier reported lies inside the input, between quotes, with no
 * backslash or line break; the scan ends on any input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "imports.h"

typedef struct seen {
    const char *data;
    size_t size, n;
} seen;

static bool on_spec(void *ud, const char *spec, size_t len)
{
    seen *s = ud;
    FUZZ_CHECK(spec >= s->data && spec + len <= s->data + s->size);
    FUZZ_CHECK(spec > s->data && (spec[-1] == '"' || spec[-1] == '\''));
    FUZZ_CHECK(spec + len < s->data + s->size && spec[len] == spec[-1]);
    FUZZ_CHECK(memchr(spec, '\\', len) == NULL && memchr(spec, '\n', len) == NULL);
    (void)nano_import_is_relative(spec, len);
    s->n++;
    return s->n < 100000;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    seen s = {(const char *)data, size, 0};
    nano_imports_scan((const char *)data, size, on_spec, &s);
    return 0;
}

void fuzz_seeds(fuzz_add_fn add)
{
    static const char *const sources[] = {
        "import x from './a.js';\nimport {y} from \"../b.js\";\nexport * from '/c.js';\n"
        "const m = await import('./d.js', { with: { type: 'json' } });\n",
        "// import './no.js'\n/* import './no.js' */ const s = 'import \"./no.js\"';\n"
        "const t = `${`nested`} import './no.js'`; const r = /['\"]/g; a / b / c;\n"
        "x.import('./no.js'); ({ from: './no.js' }); import './yes.js';\n",
        "#!/usr/bin/env node\nimport 'bare'; import(\"file:///abs.js\"); return /'/.test(s);\n",
    };
    for (size_t i = 0; i < sizeof sources / sizeof sources[0]; i++)
        add(sources[i], strlen(sources[i]));
}
