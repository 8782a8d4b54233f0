#!/usr/bin/env python3
"""tests/wpt/reasons.py: gives new entries of expectations.json a one-line reason.

`run.py --update` records each new failure with its raw failure message. This maps the
common causes (an engine feature V8 10.2 lacks, a file missing from the WPT snapshot, the
WPT server's Python handlers, ICU table differences, an API not implemented yet, ...) to a
reason; anything it does not recognise is marked "not yet analysed: MESSAGE" so it stands
out in review. Edit the rules as the implementation moves on; never commit a reason that
is not true.

Usage: python3 tests/wpt/reasons.py   (rewrites tests/wpt/expectations.json in place)
"""
import os
import json
import re

p = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'expectations.json')
e=json.load(open(p))
missing_re=re.compile(r"(?:ReferenceError: )?([A-Z][A-Za-z0-9]+) is not defined")
method_re=re.compile(r"\.(formData|blob|clone|bytes|arrayBuffer|json|text|body|signal)\b[^.]*is not a function|reading '(\w+)'")
def reason(key, name, msg):
    if "Worker is not defined" in msg:
        return "needs the Worker constructor; dedicated workers are not part of this runtime"
    if key.endswith("user-activation.tentative.any.js"):
        return "needs navigator.userActivation, a browser user-gesture concept"
    if key.endswith("garbage-collected.tentative.any.js"):
        return "needs a way to force garbage collection (a tentative test)"
    if name == "testFormDataAppendEmptyBlob":
        return "the test compares a number with a Date, which this snapshot's testharness.js refuses in any runtime"
    if "Float16Array" in msg:
        return "V8 10.2 has no Float16Array"
    if "Array.fromAsync is not a function" in msg:
        return "V8 10.2 has no Array.fromAsync (ES2024), which the test's helper uses"
    if key.startswith("FileAPI/url/url-with-fetch"):
        return "fetch() of blob: URLs comes with the outbound fetch() issue"
    if "VideoFrame is not defined" in msg:
        return "needs VideoFrame (WebCodecs), a media API outside this runtime's surface"
    if key.startswith("streams/readable-streams/owning-type-message-port"):
        return "structuredClone (and so an owning stream's enqueue) cannot transfer MessagePorts (docs/api.md)"
    if "MessagePort] could not be cloned" in msg:
        return "MessagePorts inside a message's data (not only in the transfer list) are not supported yet (issue 4)"
    if key.startswith("encoding/legacy-mb-schinese"): return "ICU 72's GB18030 mapping (GB18030-2005) differs from the Encoding Standard's gb18030 index"
    if key.startswith("encoding/iso-2022-jp"): return "ICU's ISO-2022-JP decoder treats this escape sequence differently from the Encoding Standard"
    m=re.search(r"(windows-\d+) (?:doesn't have|has) a pointer", name)
    if m: return f"ICU's {m.group(1)} table differs from the Encoding Standard's index at this byte"
    if re.search(r"ISO-8859-16|iso-8859-16", name+" "+msg): return "ICU 72 (Debian 12) has no ISO-8859-16 converter"
    if "XMLHttpRequest is not defined" in msg: return "uses XMLHttpRequest, which is not part of the WinterTC API"
    if "Unexpected global object" in msg: return "idlharness only knows window/worker globals; nano's global is an EventTarget but no *GlobalScope (docs/api.md)"
    if "resize is not a function" in msg or name.startswith(("Growable", "Length-tracking", "Resizable")): return "V8 10.2 has no resizable ArrayBuffer / growable SharedArrayBuffer"
    if "wpt glue: no resource blob:" in msg or "createObjectURL" in msg and "fetch" in key:
        return "fetch() of blob: URLs comes with the outbound fetch() issue"
    if "wpt glue: no resource" in msg and ("/resources/" in msg) and (".py" in msg): return "needs the WPT HTTP server's Python handlers, which do not run here"
    if "wpt glue: no resource" in msg: return "the file it loads is not in the ../shared/wpt snapshot"
    if "missing META script" in msg: return "a script it needs is not in the ../shared/wpt snapshot"
    if "compareComponent" in msg: return "URLPattern.compareComponent is a tentative API, not in the URL Pattern Standard"
    if "Lone quantifier brackets" in msg or "Invalid regular expression" in msg: return "V8 10.2 has no RegExp 'v' flag (set notation in URLPattern regexps)"
    if key.startswith("wasm/"): return "V8 10.2 (libnode108) predates this WebAssembly JS API feature or behaviour"
    if "Adding invalid request header" in name or "Adding invalid no-cors request header" in name or "is filtering headers" in name:
        return "forbidden and no-cors request headers are a browser safety rule; like Deno and workerd, a server runtime lets apps set them (proxying needs Cookie, Host, ...)"
    if "no-cors" in name: return "the no-cors Headers guard is a browser concept not applied here (see forbidden headers)"
    m=missing_re.search(msg)
    if m: return f"{m.group(1)} is not part of this runtime"
    # Anything else is marked "not yet analysed" below, so it cannot hide behind a stale guess.
    return None
n=0
for key,subs in e.items():
    for name,msg in list(subs.items()):
        if re.match(r"^(FAIL|ERROR|TIMEOUT|NOTRUN|PRECONDITION_FAILED): ", msg) or msg.startswith("not yet analysed: "):
            raw = msg[len("not yet analysed: "):] if msg.startswith("not yet analysed: ") else msg
            r=reason(key,name,raw)
            subs[name]= r if r else "not yet analysed: "+raw
            n+=1
with open(p,'w') as f:
    json.dump(dict(sorted(e.items())),f,indent=1,ensure_ascii=True); f.write("\n")
print("reclassified", n, "total", sum(len(v) for v in e.values()), "not analysed", sum(1 for s in e.values() for v in s.values() if v.startswith("not yet")))
