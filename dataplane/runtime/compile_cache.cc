// compile_cache.cc: one compile per module source per process (docs/nano-dp.md, "Compile
// cache").
//
// The first isolate that compiles a module source compiles it in full; once the app's top
// level has run there, the code V8 made for it (top level, and every function that ran while
// loading) is serialized with ScriptCompiler::CreateCodeCache and kept here. Every later
// isolate compiling the same source (another worker thread, a restart after a memory kill, a
// pooled isolate given the app) consumes that instead of parsing and compiling again.
//
// Entries are keyed by the SHA-256 of the source text: two tenants can only share an entry by
// having the same source, and no source can be served another's code. V8 checks on its own
// that an entry matches its version and flags (a mismatch is "rejected": the entry is dropped
// and the module compiled anew). In memory the entries of the process share a byte budget
// (least recently used go first); with a directory (`--code-dir`, control-plane mode) they are
// also written there, so a restarted node compiles nothing it compiled before. A file there is
// used only if its header matches this binary (V8's tag and the startup snapshot's hash) and
// its payload its checksum: a truncated or foreign file is ignored and replaced.
//
// Only the serving process makes entries. The load check (`nano-dp check`) runs untrusted
// module code in a child process precisely so that a compromised V8 there cannot reach the
// node; letting that child write code the node then deserializes would undo it.
//
// Any thread: one mutex guards the table; disk reads and writes run outside it.
#include "runtime_int.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <list>
#include <mutex>
#include <unordered_map>

extern "C" {
#include "log.h"
#include "sha256.h"
}

namespace {

constexpr char kMagic[8] = {'N', 'A', 'N', 'O', 'V', '8', 'C', '1'};
// Header of a file: magic, V8's tag, snapshot hash, payload length, payload SHA-256 (hex).
struct FileHeader {
    char magic[8];
    uint32_t v8_tag;
    uint32_t reserved;
    char snapshot_sha[64];
    uint64_t payload_len;
    char payload_sha[64];
};

struct Entry {
    std::string key;
    std::shared_ptr<const std::string> bytes;
};

struct Cache {
    std::mutex mu;
    std::list<Entry> lru; // most recently used first
    std::unordered_map<std::string, std::list<Entry>::iterator> by_key;
    size_t bytes = 0;
    size_t budget = RT_COMPILE_CACHE_BUDGET;
    std::string dir;          // empty: memory only
    std::string snapshot_sha; // of the startup blob, for file headers (set with dir)
    rt_compile_cache_stats stats = {};
};

Cache &cache()
{
    static Cache *c = new Cache(); // never destroyed: worker threads may outlive statics
    return *c;
}

// Under c.mu.
void evict_to_budget(Cache &c)
{
    while (c.bytes > c.budget && !c.lru.empty()) {
        Entry &old = c.lru.back();
        c.bytes -= old.bytes->size();
        c.by_key.erase(old.key);
        c.lru.pop_back();
        c.stats.evictions++;
    }
}

// Under c.mu.
void insert(Cache &c, const std::string &key, std::shared_ptr<const std::string> bytes)
{
    auto it = c.by_key.find(key);
    if (it != c.by_key.end()) {
        c.bytes -= it->second->bytes->size();
        c.lru.erase(it->second);
        c.by_key.erase(it);
    }
    c.bytes += bytes->size();
    c.lru.push_front({key, std::move(bytes)});
    c.by_key[key] = c.lru.begin();
    evict_to_budget(c);
}

std::string file_path(const std::string &dir, const std::string &key)
{
    return dir + "/" + key + ".v8cache";
}

// A file's payload if the file is a regular file with a header for this binary and a payload
// matching its checksum; else nullptr.
std::shared_ptr<const std::string> read_file(const std::string &dir, const std::string &snap,
                                             const std::string &key)
{
    std::string path = file_path(dir, key);
    int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return nullptr;
    struct stat st;
    FileHeader h;
    std::shared_ptr<std::string> payload;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size >= sizeof h &&
        (size_t)st.st_size - sizeof h <= RT_COMPILE_CACHE_MAX_ENTRY &&
        pread(fd, &h, sizeof h, 0) == (ssize_t)sizeof h && memcmp(h.magic, kMagic, 8) == 0 &&
        h.v8_tag == v8::ScriptCompiler::CachedDataVersionTag() &&
        memcmp(h.snapshot_sha, snap.data(), 64) == 0 &&
        h.payload_len == (uint64_t)st.st_size - sizeof h) {
        payload = std::make_shared<std::string>(h.payload_len, '\0');
        size_t got = 0;
        while (got < h.payload_len) {
            ssize_t n = pread(fd, &(*payload)[got], h.payload_len - got, (off_t)(sizeof h + got));
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        char sha[65];
        nano_sha256_hex(payload->data(), payload->size(), sha);
        if (got != h.payload_len || memcmp(sha, h.payload_sha, 64) != 0)
            payload.reset();
    }
    close(fd);
    if (payload == nullptr)
        NANO_WARN("rt.compile_cache_file_ignored", "path=%s detail=%s", path.c_str(),
                  "not a cache file of this binary, or damaged; it will be replaced");
    return payload;
}

// Writes the entry beside its final name and renames it into place, so that a reader never
// sees half a file. Failures are logged; the memory entry serves on.
void write_file(const std::string &dir, const std::string &snap, const std::string &key,
                const std::string &bytes)
{
    FileHeader h = {};
    memcpy(h.magic, kMagic, 8);
    h.v8_tag = v8::ScriptCompiler::CachedDataVersionTag();
    memcpy(h.snapshot_sha, snap.data(), 64);
    h.payload_len = bytes.size();
    char sha[65];
    nano_sha256_hex(bytes.data(), bytes.size(), sha);
    memcpy(h.payload_sha, sha, 64);
    std::string path = file_path(dir, key);
    std::string tmp = path + ".tmp-XXXXXX";
    int fd = mkstemp(&tmp[0]);
    if (fd < 0) {
        NANO_WARN("rt.compile_cache_write_failed", "path=%s error=%s", path.c_str(),
                  strerror(errno));
        return;
    }
    bool ok = write(fd, &h, sizeof h) == (ssize_t)sizeof h;
    for (size_t done = 0; ok && done < bytes.size();) {
        ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
        ok = n > 0;
        done += ok ? (size_t)n : 0;
    }
    int saved = errno;
    ok = close(fd) == 0 && ok;
    if (ok && rename(tmp.c_str(), path.c_str()) == 0)
        return;
    NANO_WARN("rt.compile_cache_write_failed", "path=%s error=%s", path.c_str(),
              strerror(saved != 0 ? saved : errno));
    unlink(tmp.c_str());
}

} // namespace

std::shared_ptr<const std::string> rt_compile_cache_find(const std::string &key)
{
    Cache &c = cache();
    std::string dir, snap;
    {
        std::lock_guard<std::mutex> lock(c.mu);
        auto it = c.by_key.find(key);
        if (it != c.by_key.end()) {
            c.lru.splice(c.lru.begin(), c.lru, it->second);
            c.stats.hits++;
            return it->second->bytes;
        }
        dir = c.dir;
        snap = c.snapshot_sha;
    }
    std::shared_ptr<const std::string> bytes = dir.empty() ? nullptr : read_file(dir, snap, key);
    std::lock_guard<std::mutex> lock(c.mu);
    if (bytes == nullptr) {
        c.stats.misses++;
        return nullptr;
    }
    c.stats.hits++;
    c.stats.disk_reads++;
    insert(c, key, bytes);
    return bytes;
}

void rt_compile_cache_store(const std::string &key, const uint8_t *data, size_t len)
{
    if (len == 0 || len > RT_COMPILE_CACHE_MAX_ENTRY)
        return;
    auto bytes = std::make_shared<const std::string>(reinterpret_cast<const char *>(data), len);
    Cache &c = cache();
    std::string dir, snap;
    {
        std::lock_guard<std::mutex> lock(c.mu);
        insert(c, key, bytes);
        c.stats.stores++;
        dir = c.dir;
        snap = c.snapshot_sha;
    }
    if (!dir.empty())
        write_file(dir, snap, key, *bytes);
}

void rt_compile_cache_drop(const std::string &key)
{
    Cache &c = cache();
    std::lock_guard<std::mutex> lock(c.mu);
    c.stats.rejects++;
    auto it = c.by_key.find(key);
    if (it == c.by_key.end())
        return;
    c.bytes -= it->second->bytes->size();
    c.lru.erase(it->second);
    c.by_key.erase(it);
}

extern "C" int rt_compile_cache_set_dir(const char *dir, nano_error *err)
{
    if (dir == nullptr) {
        Cache &c = cache();
        std::lock_guard<std::mutex> lock(c.mu);
        c.dir.clear();
        return 0;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return nano_error_set(err, -errno, "compile_cache_dir", "cannot make %s: %s", dir,
                              strerror(errno));
    struct stat st;
    if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return nano_error_set(err, NANO_EINVAL, "compile_cache_dir", "%s: not a directory", dir);
    if (access(dir, W_OK | X_OK) != 0)
        return nano_error_set(err, NANO_EINVAL, "compile_cache_dir", "%s: not writable (%s)", dir,
                              strerror(errno));
    v8::StartupData *blob = rt_snapshot_blob();
    char snap[65] = "";
    if (blob != nullptr)
        nano_sha256_hex(blob->data, (size_t)blob->raw_size, snap);
    Cache &c = cache();
    std::lock_guard<std::mutex> lock(c.mu);
    c.dir = dir;
    c.snapshot_sha.assign(snap, 64);
    return 0;
}

extern "C" void rt_compile_cache_set_budget(size_t bytes)
{
    Cache &c = cache();
    std::lock_guard<std::mutex> lock(c.mu);
    c.budget = bytes;
    evict_to_budget(c);
}

extern "C" void rt_compile_cache_get_stats(rt_compile_cache_stats *out)
{
    Cache &c = cache();
    std::lock_guard<std::mutex> lock(c.mu);
    *out = c.stats;
    out->entries = c.by_key.size();
    out->bytes = c.bytes;
}
