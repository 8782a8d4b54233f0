# packaging/cpack.cmake: the Debian packages `make package` builds (CPack's DEB generator),
# included last by the top-level CMakeLists.txt. What goes into each is in
# packaging/CMakeLists.txt; docs/building.md#packages lists them.
#
# Depends are written out, not computed at package time, so that the packages are the same
# on every build machine (CPack's dpkg-shlibdeps run fails where libnode was unpacked into
# .deps/ rather than installed by dpkg). They were derived from the binaries:
#   dpkg-shlibdeps -O --ignore-missing-info build/bin/{nano-dp,nanocp,nanoctl}
# plus libnode108's own shlibs line (libnode 108 libnode108 (>= 18.20.4+dfsg)), which
# dpkg-shlibdeps cannot see when libnode is not dpkg-installed. tests/package/test_package.py
# checks every library the packaged binaries need (readelf NEEDED) against these lists, so a
# new library fails the test until it is added here.
# msgpack-c is not among them: its static part, or none, is used (no libmsgpackc.so.2 NEEDED).
# libsystemd0 is (sd_notify, shared/sd.c): the units are Type=notify, so packages must be
# built where libsystemd-dev is installed; packaging/CMakeLists.txt warns when it is not.

set(NANO_DEB_MAINTAINER "NANO maintainers <nano@localhost>" CACHE STRING
    "Maintainer field of the .deb packages")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME nano)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT ${NANO_DEB_MAINTAINER})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_OUTPUT_FILE_PREFIX packages)           # build/packages/*.deb
set(CPACK_STRIP_FILES TRUE)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_GROUPING IGNORE)           # one package per component
set(CPACK_COMPONENTS_ALL common dp cp ctl)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)         # NAME_VERSION-RELEASE_ARCH.deb
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_COMPRESSION_TYPE xz)
# Maintainer scripts 0755 and the other control files 0644, whatever the checkout's modes.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
set(NANO_DEB_VERSION "${PROJECT_VERSION}-${CPACK_DEBIAN_PACKAGE_RELEASE}")
set(NANO_DEB_DIR ${CMAKE_BINARY_DIR}/packaging/debian)

# nano-common: the user (systemd-sysusers) and /etc/nano (systemd-tmpfiles); both tools take
# --root, so the maintainer script also works for an install into another root (dpkg --root).
set(CPACK_DEBIAN_COMMON_PACKAGE_NAME nano-common)
set(CPACK_DEBIAN_COMMON_PACKAGE_ARCHITECTURE all)
set(CPACK_DEBIAN_COMMON_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_COMMON_PACKAGE_DEPENDS
    "systemd | systemd-standalone-sysusers, systemd | systemd-standalone-tmpfiles")
set(CPACK_DEBIAN_COMMON_PACKAGE_CONTROL_EXTRA ${NANO_DEB_DIR}/nano-common/postinst)
set(CPACK_COMPONENT_COMMON_DESCRIPTION
    "NANO: files shared by nano-dp and nanocp
The system user and group nano, which the NANO daemons run as, and /etc/nano
(0750 root:nano), their configuration and credentials directory.")

set(CPACK_DEBIAN_DP_PACKAGE_NAME nano-dp)
set(CPACK_DEBIAN_DP_PACKAGE_SECTION web)
# libcurl is not linked: nano-dp loads libcurl.so.4 (libcurl4) with dlopen on the first
# outbound fetch() and serves without it (fetch() then fails with a TypeError), hence a
# Recommends, with the CA certificates HTTPS needs.
string(JOIN ", " CPACK_DEBIAN_DP_PACKAGE_DEPENDS
    "nano-common (= ${NANO_DEB_VERSION})" "libnode108 (>= 18.20.4+dfsg)"
    "libbrotli1 (>= 0.6.0)" "libc6 (>= 2.34)" "libgcc-s1 (>= 3.0)" "libicu72 (>= 72.1~rc-1~)"
    "libjansson4 (>= 2.14)" "libnng1 (>= 1.5.2)" "libsodium23 (>= 0.6.1)" "libssl3 (>= 3.0.0)"
    "libstdc++6 (>= 11)" "libsystemd0" "libuv1 (>= 1.44.1)" "zlib1g (>= 1:1.1.4)")
set(CPACK_DEBIAN_DP_PACKAGE_RECOMMENDS "libcurl4, ca-certificates")
set(CPACK_DEBIAN_DP_PACKAGE_CONTROL_EXTRA
    ${NANO_DEB_DIR}/nano-dp/postinst ${NANO_DEB_DIR}/nano-dp/prerm ${NANO_DEB_DIR}/nano-dp/postrm
    ${NANO_DEB_DIR}/nano-dp/conffiles)
set(CPACK_COMPONENT_DP_DESCRIPTION
    "NANO data plane: Workers-style JavaScript apps in V8 isolates
nano-dp serves HTTP/1.1 and runs each app's fetch handler in V8 isolates of
its own, with the Web APIs such apps use. It serves the apps of a nano.json
file (/etc/nano/nano.json), or those a NANO control plane (nanocp) pushes.
This package has the binary, its systemd unit (not enabled on install) and
an example configuration.")

set(CPACK_DEBIAN_CP_PACKAGE_NAME nanocp)
set(CPACK_DEBIAN_CP_PACKAGE_SECTION net)
string(JOIN ", " CPACK_DEBIAN_CP_PACKAGE_DEPENDS
    "nano-common (= ${NANO_DEB_VERSION})" "libc6 (>= 2.34)" "libcurl4 (>= 7.74.0)"
    "libjansson4 (>= 2.14)" "libnng1 (>= 1.5.2)" "libsqlite3-0 (>= 3.20.0)" "libssl3 (>= 3.0.0)"
    "libsystemd0" "libuv1 (>= 1.33.1)")
# nanocp load-checks every deployment with the nano-dp beside it (it runs `nano-dp check`);
# without one, deployments are accepted unchecked. A management host may do without V8.
set(CPACK_DEBIAN_CP_PACKAGE_RECOMMENDS "nano-dp (= ${NANO_DEB_VERSION})")
set(CPACK_DEBIAN_CP_PACKAGE_SUGGESTS "nanoctl")
set(CPACK_DEBIAN_CP_PACKAGE_CONTROL_EXTRA
    ${NANO_DEB_DIR}/nanocp/postinst ${NANO_DEB_DIR}/nanocp/prerm ${NANO_DEB_DIR}/nanocp/postrm
    ${NANO_DEB_DIR}/nanocp/conffiles)
set(CPACK_COMPONENT_CP_DESCRIPTION
    "NANO control plane: apps, code, env and secrets of a fleet
nanocp keeps a NANO fleet's apps, deployments, env vars, encrypted secrets,
nodes and audit log in SQLite (/var/lib/nanocp), serves the admin API over
HTTP+JSON and NNG (for nanoctl), and pushes every change to the data planes.
This package has the binary and its systemd unit (not enabled on install).")

set(CPACK_DEBIAN_CTL_PACKAGE_NAME nanoctl)
set(CPACK_DEBIAN_CTL_PACKAGE_SECTION admin)
string(JOIN ", " CPACK_DEBIAN_CTL_PACKAGE_DEPENDS
    "libc6 (>= 2.34)" "libjansson4 (>= 2.14)" "libnng1 (>= 1.5.2)" "libssl3 (>= 3.0.0)")
set(CPACK_COMPONENT_CTL_DESCRIPTION
    "NANO admin CLI
nanoctl administers a NANO control plane (nanocp) over its binary admin API:
apps, deployments, env vars, secrets, nodes, drains and the audit log, and
nanoctl apply makes nanocp match a nano.json file. Bash completion included.")

include(CPack)
