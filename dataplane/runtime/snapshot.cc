// snapshot.cc: the V8 startup snapshot that every context starts from: the built-in JS
// (dataplane/js) already loaded, made at build time by nano-snapshot-gen (snapshot_gen.cc) and
// embedded as a byte array. Also the table of external references, which must be the same
// for the creator and for every isolate that deserializes the snapshot.
#include "runtime_int.h"

#include <cstdio>
#include <cstring>

extern "C" {
#include "embedded.h"
extern const nano_embedded nano_builtin_js[];
extern const size_t nano_builtin_js_count;
// Generated: snapshot_blob.c (build tree) in nano_rt; empty in the generator itself.
extern const unsigned char nano_snapshot_blob[];
extern const size_t nano_snapshot_blob_len;
}

using v8::Context;
using v8::Function;
using v8::Isolate;
using v8::Local;
using v8::Object;
using v8::String;
using v8::TryCatch;
using v8::Value;

const intptr_t *rt_external_references(void)
{
    // A snapshotted function names its C++ callback by index into this table, so the order
    // only has to agree between the generator and the runtime, which share this code.
    static const std::vector<intptr_t> refs = [] {
        std::vector<intptr_t> v;
        for (const rt_natives_fn *list = rt_native_lists; *list != nullptr; list++) {
            size_t n = 0;
            const rt_native *natives = (*list)(&n);
            for (size_t i = 0; i < n; i++)
                v.push_back(reinterpret_cast<intptr_t>(natives[i].fn));
        }
        v.push_back(0);
        return v;
    }();
    return refs.data();
}

v8::StartupData *rt_snapshot_blob(void)
{
    static v8::StartupData blob = {reinterpret_cast<const char *>(nano_snapshot_blob),
                                   (int)nano_snapshot_blob_len};
    return nano_snapshot_blob_len > 0 ? &blob : nullptr;
}

// The source of a built-in as Latin-1 with every character above U+00FF written as a \uXXXX
// escape (two for one above U+FFFF). V8 keeps each built-in's source in the snapshot (lazy
// compilation and Function.prototype.toString need it), and one character above U+00FF in a
// file makes all of it a two-byte string: core-js's copyright line alone doubled its 232 KB,
// and every isolate deserializes the snapshot. An escape means the same character in a
// string, template, regular expression, identifier or comment; after a backslash it would
// not, so that is refused (false, with the code point in *bad).
static bool latin1_source(const char *data, size_t len, std::string *out, uint32_t *bad)
{
    out->clear();
    out->reserve(len);
    const auto *p = reinterpret_cast<const unsigned char *>(data);
    for (size_t i = 0; i < len;) {
        uint32_t c = p[i];
        size_t n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        if (i + n > len)
            n = len - i;
        if (n > 1) {
            c &= n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07;
            for (size_t k = 1; k < n; k++)
                c = (c << 6) | (p[i + k] & 0x3F);
        }
        if (c <= 0xFF) {
            out->push_back(static_cast<char>(c));
        } else {
            if (!out->empty() && out->back() == '\\') {
                *bad = c;
                return false;
            }
            char esc[16];
            if (c <= 0xFFFF) {
                snprintf(esc, sizeof esc, "\\u%04X", c);
            } else {
                uint32_t v = c - 0x10000;
                snprintf(esc, sizeof esc, "\\u%04X\\u%04X", 0xD800 + (v >> 10),
                         0xDC00 + (v & 0x3FF));
            }
            out->append(esc);
        }
        i += n;
    }
    return true;
}

int rt_load_builtins(rt_isolate *iso, Local<Context> ctx, Local<Object> *internal_out,
                     const char *const *eager, nano_error *err)
{
    Isolate *isolate = iso->isolate;
    Local<Object> binding = rt_make_binding(isolate, ctx);
    Local<Object> primordials = Object::New(isolate);
    Local<Object> internal = Object::New(isolate);
    Local<String> params[] = {
        String::NewFromUtf8Literal(isolate, "binding"),
        String::NewFromUtf8Literal(isolate, "primordials"),
        String::NewFromUtf8Literal(isolate, "internal"),
    };
    for (size_t i = 0; i < nano_builtin_js_count; i++) {
        const nano_embedded *f = &nano_builtin_js[i];
        std::string origin_name = std::string("nano:internal/") + f->name;
        v8::ScriptOrigin origin(isolate,
                                String::NewFromUtf8(isolate, origin_name.c_str()).ToLocalChecked());
        std::string text;
        uint32_t bad = 0;
        if (!latin1_source(f->data, f->len, &text, &bad))
            return nano_error_set(err, NANO_EINVAL, "builtin_failed",
                                  "built-in %s: a backslash before U+%04X (write it as an "
                                  "escape)",
                                  f->name, bad);
        v8::ScriptCompiler::Source source(
            String::NewFromOneByte(isolate, reinterpret_cast<const uint8_t *>(text.data()),
                                   v8::NewStringType::kNormal, (int)text.size())
                .ToLocalChecked(),
            origin);
        TryCatch tc(isolate);
        Local<Function> fn;
        Local<Value> args[] = {binding, primordials, internal};
        Local<Value> checked;
        if (i > 0 &&
            internal->Get(ctx, String::NewFromUtf8Literal(isolate, "checkedPrimordials"))
                .ToLocal(&checked) &&
            checked->IsObject())
            args[1] = checked;
        auto options = v8::ScriptCompiler::kNoCompileOptions;
        for (const char *const *e = eager; e != nullptr && *e != nullptr; e++)
            if (strcmp(*e, f->name) == 0)
                options = v8::ScriptCompiler::kEagerCompile;
        if (!v8::ScriptCompiler::CompileFunction(ctx, &source, 3, params, 0, nullptr, options)
                 .ToLocal(&fn) ||
            fn->Call(ctx, v8::Undefined(isolate), 3, args).IsEmpty()) {
            std::string why = rt_describe_exception(iso, ctx, tc);
            return nano_error_set(err, NANO_EJS, "builtin_failed", "built-in %s failed: %s",
                                  f->name, why.c_str());
        }
    }
    *internal_out = internal;
    return 0;
}
