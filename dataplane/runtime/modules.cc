// modules.cc: loading the app as ES modules from files: relative static and dynamic imports,
// import.meta.url. Bare specifiers ("hono") are refused with a hint to bundle: NANO runs one
// module or a bundle of modules, as Workers does.
#include "runtime_int.h"

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

extern "C" {
#include "alloc.h"
#include "config.h"
#include "file.h"
#include "sha256.h"
}

using v8::Context;
using v8::FixedArray;
using v8::Isolate;
using v8::Local;
using v8::MaybeLocal;
using v8::Module;
using v8::String;
using v8::Value;

static rt_isolate *iso_of(Local<Context> ctx)
{
    return static_cast<rt_isolate *>(ctx->GetIsolate()->GetData(0));
}

bool rt_read_file(const std::string &path, std::string *out, nano_error *why)
{
    char *data = nullptr;
    size_t len = 0;
    if (nano_read_file(path.c_str(), NANO_CODE_MAX_BYTES, &data, &len, why) != 0)
        return false;
    out->assign(data, len);
    nano_free(data);
    return true;
}

static std::string dirname_of(const std::string &path)
{
    size_t slash = path.rfind('/');
    return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

// Resolves specifier against the importing file. Returns the canonical path, or "" with why.
static std::string resolve(const std::string &specifier, const std::string &referrer,
                           std::string *why)
{
    std::string spec = specifier;
    if (spec.rfind("nano:", 0) == 0)
        return spec; // a built-in module; load_graph checks that it exists
    if (spec.rfind("file://", 0) == 0)
        spec = spec.substr(7);
    bool relative = spec.rfind("./", 0) == 0 || spec.rfind("../", 0) == 0 ||
                    spec.rfind("/", 0) == 0;
    if (!relative) {
        if (spec.rfind("node:", 0) == 0)
            *why = "Node.js built-in modules are not available";
        else
            *why = "only relative imports ('./x.js') work; bundle dependencies into the app "
                   "(e.g. esbuild --bundle --format=esm)";
        return "";
    }
    std::string joined = spec[0] == '/' ? spec : dirname_of(referrer) + "/" + spec;
    char real[PATH_MAX];
    if (realpath(joined.c_str(), real) == nullptr) {
        *why = std::string("no such file: ") + joined;
        return "";
    }
    return real;
}

static rt_module *find_by_path(rt_isolate *iso, const std::string &path)
{
    for (auto &m : iso->modules)
        if (m.path == path)
            return &m;
    return nullptr;
}

static const std::string *path_of(rt_isolate *iso, Local<Module> module)
{
    Isolate *isolate = iso->isolate;
    for (auto &m : iso->modules)
        if (m.module.Get(isolate) == module)
            return &m.path;
    return nullptr;
}

static MaybeLocal<Module> compile(rt_isolate *iso, Local<Context> ctx, const std::string &path,
                                  nano_error *err)
{
    Isolate *isolate = iso->isolate;
    std::string text;
    nano_error unreadable = {};
    const nano_module_source *pinned = nullptr;
    for (size_t i = 0; i < iso->n_imports && pinned == nullptr; i++)
        if (path == iso->imports[i].path)
            pinned = &iso->imports[i];
    if (!iso->main_real.empty() && path == iso->main_real)
        text = iso->main_source;
    else if (pinned != nullptr)
        text.assign(pinned->code, pinned->len);
    else if (!rt_read_file(path, &text, &unreadable)) {
        nano_error_set(err, NANO_ENOENT, "module_unreadable", "cannot read module %s",
                       unreadable.message);
        return {};
    }
    Local<String> source_text;
    if (!String::NewFromUtf8(isolate, text.data(), v8::NewStringType::kNormal, (int)text.size())
             .ToLocal(&source_text)) {
        nano_error_set(err, NANO_ETOOBIG, "module_too_large", "module %s is too large",
                       path.c_str());
        return {};
    }
    v8::ScriptOrigin origin(isolate, String::NewFromUtf8(isolate, path.c_str()).ToLocalChecked(), 0,
                            0, false, -1, Local<Value>(), false, false, true);
    // The code an earlier isolate made from this very source, if any (compile_cache.cc). The
    // entry's bytes stay alive (cached) until the compile is done with them.
    char key[65];
    nano_sha256_hex(text.data(), text.size(), key);
    std::shared_ptr<const std::string> cached = rt_compile_cache_find(key);
    auto *data = cached == nullptr
                     ? nullptr
                     : new v8::ScriptCompiler::CachedData(
                           reinterpret_cast<const uint8_t *>(cached->data()), (int)cached->size(),
                           v8::ScriptCompiler::CachedData::BufferNotOwned);
    v8::ScriptCompiler::Source source(source_text, origin, data); // owns data
    v8::TryCatch tc(isolate);
    Local<Module> module;
    if (!v8::ScriptCompiler::CompileModule(isolate, &source,
                                           data != nullptr ? v8::ScriptCompiler::kConsumeCodeCache
                                                           : v8::ScriptCompiler::kNoCompileOptions)
             .ToLocal(&module)) {
        std::string why = rt_describe_exception(iso, ctx, tc);
        nano_error_set(err, NANO_ESYNTAX, "module_syntax", "%s", why.c_str());
        return {};
    }
    bool is_rejected = data != nullptr && source.GetCachedData()->rejected;
    if (is_rejected)
        rt_compile_cache_drop(key); // V8 compiled the source itself; this isolate makes a new one
    iso->modules.push_back({path, v8::Global<Module>(isolate, module),
                            data == nullptr || is_rejected ? std::string(key) : std::string()});
    return module;
}

// The object whose properties a built-in module ("nano:test") exports, or empty.
static Local<v8::Object> builtin_exports(rt_isolate *iso, Local<Context> ctx,
                                         const std::string &name)
{
    Isolate *isolate = iso->isolate;
    Local<Value> table, obj;
    Local<v8::Object> internal = iso->internal.Get(isolate);
    if (!internal->Get(ctx, String::NewFromUtf8Literal(isolate, "builtinModules"))
             .ToLocal(&table) ||
        !table->IsObject() ||
        !table.As<v8::Object>()
             ->Get(ctx, String::NewFromUtf8(isolate, name.c_str()).ToLocalChecked())
             .ToLocal(&obj) ||
        !obj->IsObject())
        return {};
    return obj.As<v8::Object>();
}

static MaybeLocal<Value> evaluate_builtin(Local<Context> ctx, Local<Module> module)
{
    rt_isolate *iso = iso_of(ctx);
    Isolate *isolate = iso->isolate;
    const std::string *name = path_of(iso, module);
    Local<v8::Object> obj = name ? builtin_exports(iso, ctx, *name) : Local<v8::Object>();
    Local<v8::Array> keys;
    if (obj.IsEmpty() || !obj->GetOwnPropertyNames(ctx).ToLocal(&keys))
        return {};
    for (uint32_t i = 0; i < keys->Length(); i++) {
        Local<Value> key = keys->Get(ctx, i).ToLocalChecked();
        Local<Value> value;
        if (!obj->Get(ctx, key).ToLocal(&value) ||
            module->SetSyntheticModuleExport(isolate, key.As<String>(), value).IsNothing())
            return {};
    }
    return v8::Undefined(isolate);
}

// A synthetic module exporting internal.builtinModules[name]'s properties.
static MaybeLocal<Module> builtin_module(rt_isolate *iso, Local<Context> ctx,
                                         const std::string &name, nano_error *err)
{
    Isolate *isolate = iso->isolate;
    Local<v8::Object> obj = builtin_exports(iso, ctx, name);
    Local<v8::Array> keys;
    if (obj.IsEmpty() || !obj->GetOwnPropertyNames(ctx).ToLocal(&keys)) {
        nano_error_set(err, NANO_ENOTFOUND, "module_not_found", "no built-in module '%s'",
                       name.c_str());
        return {};
    }
    std::vector<Local<String>> names;
    for (uint32_t i = 0; i < keys->Length(); i++)
        names.push_back(keys->Get(ctx, i).ToLocalChecked().As<String>());
    Local<Module> module = Module::CreateSyntheticModule(
        isolate, String::NewFromUtf8(isolate, name.c_str()).ToLocalChecked(), names,
        evaluate_builtin);
    iso->modules.push_back({name, v8::Global<Module>(isolate, module), std::string()});
    return module;
}

// Compiles path and, depth first, every module it imports statically.
static MaybeLocal<Module> load_graph(rt_isolate *iso, Local<Context> ctx, const std::string &path,
                                     nano_error *err)
{
    Isolate *isolate = iso->isolate;
    if (rt_module *known = find_by_path(iso, path))
        return known->module.Get(isolate);
    Local<Module> module;
    if (path.rfind("nano:", 0) == 0)
        return builtin_module(iso, ctx, path, err);
    if (!compile(iso, ctx, path, err).ToLocal(&module))
        return {};
    Local<FixedArray> requests = module->GetModuleRequests();
    for (int i = 0; i < requests->Length(); i++) {
        Local<v8::ModuleRequest> req = requests->Get(ctx, i).As<v8::ModuleRequest>();
        String::Utf8Value spec(isolate, req->GetSpecifier());
        std::string why;
        std::string dep = resolve(*spec, path, &why);
        if (dep.empty()) {
            nano_error_set(err, NANO_ENOTFOUND, "module_not_found",
                           "cannot resolve '%s' imported from %s: %s", *spec, path.c_str(),
                           why.c_str());
            return {};
        }
        if (load_graph(iso, ctx, dep, err).IsEmpty())
            return {};
    }
    return module;
}

static MaybeLocal<Module> on_resolve(Local<Context> ctx, Local<String> specifier, Local<FixedArray>,
                                     Local<Module> referrer)
{
    rt_isolate *iso = iso_of(ctx);
    Isolate *isolate = iso->isolate;
    const std::string *from = path_of(iso, referrer);
    String::Utf8Value spec(isolate, specifier);
    std::string why = "the importing module is unknown";
    std::string path = from != nullptr ? resolve(*spec, *from, &why) : "";
    rt_module *m = path.empty() ? nullptr : find_by_path(iso, path);
    if (m == nullptr) {
        std::string msg = std::string("Cannot resolve '") + *spec + "': " + why;
        isolate->ThrowException(
            v8::Exception::Error(String::NewFromUtf8(isolate, msg.c_str()).ToLocalChecked()));
        return {};
    }
    return m->module.Get(isolate);
}

MaybeLocal<Module> rt_load_module_graph(rt_isolate *iso, Local<Context> ctx,
                                        const std::string &path, nano_error *err)
{
    Isolate *isolate = iso->isolate;
    std::string why;
    char real[PATH_MAX];
    if (realpath(path.c_str(), real) == nullptr) {
        nano_error_set(err, NANO_ENOENT, "module_not_found", "cannot open module %s: %s",
                       path.c_str(), strerror(errno));
        return {};
    }
    Local<Module> module;
    if (!load_graph(iso, ctx, real, err).ToLocal(&module))
        return {};
    v8::TryCatch tc(isolate);
    if (module->InstantiateModule(ctx, on_resolve).IsNothing()) {
        std::string text = rt_describe_exception(iso, ctx, tc);
        nano_error_set(err, NANO_EJS, "module_link", "%s: cannot link: %s", real, text.c_str());
        return {};
    }
    return module;
}

// Settles the dynamic import's promise with the namespace once evaluation (which may use
// top-level await) is done.
static void on_evaluated(const v8::FunctionCallbackInfo<Value> &args)
{
    Local<Context> ctx = args.GetIsolate()->GetCurrentContext();
    Local<v8::Array> data = args.Data().As<v8::Array>();
    Local<v8::Promise::Resolver> resolver =
        data->Get(ctx, 0).ToLocalChecked().As<v8::Promise::Resolver>();
    rt_ignore(resolver->Resolve(ctx, data->Get(ctx, 1).ToLocalChecked()));
}

static void on_evaluation_failed(const v8::FunctionCallbackInfo<Value> &args)
{
    Local<Context> ctx = args.GetIsolate()->GetCurrentContext();
    Local<v8::Promise::Resolver> resolver = args.Data().As<v8::Promise::Resolver>();
    rt_ignore(resolver->Reject(ctx, args[0]));
}

static MaybeLocal<v8::Promise> on_dynamic_import(Local<Context> ctx, Local<v8::Data>,
                                                 Local<Value> resource_name,
                                                 Local<String> specifier, Local<FixedArray>)
{
    rt_isolate *iso = iso_of(ctx);
    Isolate *isolate = iso->isolate;
    Local<v8::Promise::Resolver> resolver;
    if (!v8::Promise::Resolver::New(ctx).ToLocal(&resolver))
        return {};
    String::Utf8Value spec(isolate, specifier);
    String::Utf8Value from(isolate, resource_name);
    std::string why;
    std::string path = resolve(*spec, *from ? *from : ".", &why);
    nano_error err = {};
    Local<Module> module;
    v8::TryCatch tc(isolate);
    if (path.empty()) {
        std::string msg = std::string("Cannot resolve '") + *spec + "': " + why;
        rt_ignore(resolver->Reject(
            ctx,
            v8::Exception::TypeError(String::NewFromUtf8(isolate, msg.c_str()).ToLocalChecked())));
        return resolver->GetPromise();
    }
    if (!load_graph(iso, ctx, path, &err).ToLocal(&module) ||
        module->InstantiateModule(ctx, on_resolve).IsNothing()) {
        Local<Value> ex = tc.HasCaught()
                              ? tc.Exception()
                              : v8::Exception::SyntaxError(
                                    String::NewFromUtf8(isolate, err.message).ToLocalChecked());
        tc.Reset();
        rt_ignore(resolver->Reject(ctx, ex));
        return resolver->GetPromise();
    }
    Local<Value> result;
    if (!module->Evaluate(ctx).ToLocal(&result)) {
        Local<Value> ex = tc.Exception();
        tc.Reset();
        rt_ignore(resolver->Reject(ctx, ex));
        return resolver->GetPromise();
    }
    Local<Value> pair[] = {resolver, module->GetModuleNamespace()};
    Local<v8::Array> data = v8::Array::New(isolate, pair, 2);
    Local<v8::Function> ok = v8::Function::New(ctx, on_evaluated, data).ToLocalChecked();
    Local<v8::Function> bad =
        v8::Function::New(ctx, on_evaluation_failed, resolver).ToLocalChecked();
    if (result->IsPromise())
        rt_ignore(result.As<v8::Promise>()->Then(ctx, ok, bad));
    else
        rt_ignore(resolver->Resolve(ctx, module->GetModuleNamespace()));
    return resolver->GetPromise();
}

static void on_import_meta(Local<Context> ctx, Local<Module> module, Local<v8::Object> meta)
{
    rt_isolate *iso = iso_of(ctx);
    const std::string *path = path_of(iso, module);
    if (path == nullptr)
        return;
    std::string url = "file://" + *path;
    rt_ignore(
        meta->CreateDataProperty(ctx, String::NewFromUtf8Literal(iso->isolate, "url"),
                                 String::NewFromUtf8(iso->isolate, url.c_str()).ToLocalChecked()));
}

void rt_modules_install_callbacks(Isolate *isolate)
{
    isolate->SetHostImportModuleDynamicallyCallback(on_dynamic_import);
    isolate->SetHostInitializeImportMetaObjectCallback(on_import_meta);
}

void rt_modules_store_compiled(rt_isolate *iso)
{
    Isolate *isolate = iso->isolate;
    for (auto &m : iso->modules) {
        if (m.cache_key.empty())
            continue;
        Local<Module> module = m.module.Get(isolate);
        std::unique_ptr<v8::ScriptCompiler::CachedData> data(
            v8::ScriptCompiler::CreateCodeCache(module->GetUnboundModuleScript()));
        if (data != nullptr)
            rt_compile_cache_store(m.cache_key, data->data, (size_t)data->length);
        m.cache_key.clear();
    }
}
