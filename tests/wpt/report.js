// report.js: loaded right after testharness.js. Prints each subtest result as it completes
// (so a run cut short by the runner's timeout still reports what finished) and the
// harness status at the end, one `@@WPT@@ {json}` line each, for tests/wpt/run.py.
'use strict';
(() => {
  const print = (obj) => console.log('@@WPT@@ ' + JSON.stringify(obj));
  add_result_callback((t) => {
    print({ type: 'result', name: t.name, status: t.status, message: t.message ?? null });
  });
  add_completion_callback((tests, status) => {
    print({ type: 'complete', status: status.status, message: status.message ?? null });
  });
})();
