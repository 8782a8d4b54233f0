// 01_context_init.js: the per-context half of the built-ins. The built-in files run once, at
// build time, into the startup snapshot that every context starts from (docs/nano-dp.md,
// "Startup snapshot"), so nothing they compute at load may depend on the moment, the machine
// or the app. A file that needs such a value registers a function with
// internal.onContextInit; the runtime calls internal.initContext(options) once per new
// context, before any app code runs, with options = { location, hardwareConcurrency }
// (location: the --location URL or undefined).
'use strict';

const { ArrayPrototypePush, ObjectAssign } = primordials;

const initializers = [];

ObjectAssign(internal, {
  onContextInit: (fn) => { ArrayPrototypePush(initializers, fn); },
  initContext: (options) => {
    for (let i = 0; i < initializers.length; i++) initializers[i](options);
  },
});
