// done.js: the end of wptserve's worker wrapper: all test scripts have been loaded.
done();
