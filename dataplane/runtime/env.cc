// env.cc: an app's `env` as JS sees it (vars, JSON vars, secrets; deep-frozen) and the secret
// values the runtime redacts from error text.
#include "runtime_int.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include <jansson.h>

extern "C" {
#include "alloc.h"
#include "egress.h"
#include "log.h"
}

using v8::Context;
using v8::Function;
using v8::HandleScope;
using v8::Isolate;
using v8::Local;
using v8::MaybeLocal;
using v8::Object;
using v8::String;
using v8::TryCatch;
using v8::Value;

// The app's `env`: a frozen object of strings, and of parsed JSON for vars given as JSON
// values (deep-frozen: one request must not change what the next one sees).
// A JSON env value as JS values, built from jansson's tree rather than by V8's JSON parser:
// that one leaves every string it makes two bytes wide on this V8 (10.2), and so does it to
// app literals equal to them (they share the internalized string), which sends the app's
// JSON.stringify and the server's body copy down their slow two-byte paths. Same values as
// JSON.parse: numbers parsed as doubles, keys in document order, __proto__ an own property.
static Local<Value> json_value(Isolate *isolate, Local<Context> ctx, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        Local<Object> obj = Object::New(isolate);
        const char *key;
        json_t *member;
        json_object_foreach(const_cast<json_t *>(v), key, member) {
            Local<String> name = String::NewFromUtf8(isolate, key, v8::NewStringType::kInternalized)
                                     .ToLocalChecked();
            rt_ignore(obj->CreateDataProperty(ctx, name, json_value(isolate, ctx, member)));
        }
        return obj;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        Local<v8::Array> arr = v8::Array::New(isolate, (int)n);
        for (size_t i = 0; i < n; i++)
            rt_ignore(arr->CreateDataProperty(ctx, (uint32_t)i,
                                              json_value(isolate, ctx, json_array_get(v, i))));
        return arr;
    }
    case JSON_STRING:
        return String::NewFromUtf8(isolate, json_string_value(v), v8::NewStringType::kNormal,
                                   (int)json_string_length(v))
            .ToLocalChecked();
    case JSON_INTEGER: return v8::Number::New(isolate, (double)json_integer_value(v));
    case JSON_REAL: return v8::Number::New(isolate, json_real_value(v));
    case JSON_TRUE: return v8::True(isolate);
    case JSON_FALSE: return v8::False(isolate);
    case JSON_NULL: break;
    }
    return v8::Null(isolate);
}

Local<Object> rt__make_env(rt_isolate *iso, Local<Context> ctx, const nano_env *env)
{
    Isolate *isolate = iso->isolate;
    Local<Object> obj = Object::New(isolate);
    for (size_t i = 0; env != nullptr && i < env->n_entries; i++) {
        const nano_env_entry *e = &env->entries[i];
        Local<String> text = String::NewFromUtf8(isolate, e->value, v8::NewStringType::kNormal,
                                                 (int)e->value_len)
                                 .ToLocalChecked();
        Local<Value> value = text;
        if (e->is_json) {
            // Validated by jansson when the config was read (nano_env_set_json); integers as
            // doubles here, rounded as JSON.parse rounds them.
            json_error_t jerr;
            json_t *tree = json_loadb(e->value, e->value_len,
                                      JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, &jerr);
            if (tree != nullptr) {
                value = json_value(isolate, ctx, tree);
                json_decref(tree);
            } else {
                TryCatch tc(isolate);
                Local<Value> parsed;
                if (v8::JSON::Parse(ctx, text).ToLocal(&parsed))
                    value = parsed; // a string otherwise
            }
        }
        rt_ignore(obj->Set(ctx, String::NewFromUtf8(isolate, e->name).ToLocalChecked(), value));
    }
    Local<Value> deep_freeze;
    Local<Value> args[] = {obj};
    TryCatch tc(isolate);
    if (iso->internal.Get(isolate)
            ->Get(ctx, String::NewFromUtf8Literal(isolate, "deepFreeze"))
            .ToLocal(&deep_freeze) &&
        deep_freeze->IsFunction())
        rt_ignore(deep_freeze.As<Function>()->Call(ctx, v8::Undefined(isolate), 1, args));
    else
        rt_ignore(obj->SetIntegrityLevel(ctx, v8::IntegrityLevel::kFrozen));
    return obj;
}

// Secret values to mask: the new env's, then the previous ones (requests still in flight
// may log those). Values under 4 bytes are not masked: they would mangle every line.
void rt__remember_secrets(rt_isolate *iso, const nano_env *env)
{
    std::vector<std::string> current;
    for (size_t i = 0; env != nullptr && i < env->n_entries; i++) {
        const nano_env_entry *e = &env->entries[i];
        if (e->is_secret && e->value_len >= 4)
            current.emplace_back(e->value, e->value_len);
    }
    std::vector<std::string> all = current;
    all.insert(all.end(), iso->current_secrets.begin(), iso->current_secrets.end());
    // Longest first: a secret containing another is masked whole.
    std::stable_sort(all.begin(), all.end(), [](const std::string &a, const std::string &b) {
        return a.size() > b.size();
    });
    all.erase(std::unique(all.begin(), all.end()), all.end());
    iso->secrets.swap(all);
    iso->current_secrets.swap(current);
}

void rt_isolate_set_env(rt_isolate *iso, const nano_env *env)
{
    if (iso->is_broken)
        return;
    Isolate *isolate = iso->isolate;
    Isolate::Scope isolate_scope(isolate);
    HandleScope handles(isolate);
    Local<Context> ctx = iso->context.Get(isolate);
    Context::Scope context_scope(ctx);
    // dispatch reads internal.env when a request starts: later requests see the new object,
    // requests in flight keep the one they were handed.
    rt_ignore(iso->internal.Get(isolate)->Set(ctx, String::NewFromUtf8Literal(isolate, "env"),
                                              rt__make_env(iso, ctx, env)));
    rt__remember_secrets(iso, env);
}
