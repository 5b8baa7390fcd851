# Installs the systemd unit, the example environment file and the README, and configures CPack
# to build a .deb and an .rpm (scripts/package builds both into build/packages/).
#
# Cache variables:
#   NFQ_SYSTEMD_UNITDIR  where the unit goes (default: pkg-config systemd's systemdsystemunitdir,
#                        else /lib/systemd/system; scripts/package uses /usr/lib/systemd/system,
#                        which Debian, Ubuntu and Amazon Linux all read)
#   NFQ_ENVIRONMENT_DIR  where the environment file goes (default /etc/default)
# Packages must be built with CMAKE_INSTALL_PREFIX=/usr (the unit names the binaries' full paths).

if(NOT NFQ_SYSTEMD_UNITDIR)
  set(_nfq_unitdir /lib/systemd/system)
  if(PKG_CONFIG_FOUND)
    pkg_get_variable(_nfq_pc_unitdir systemd systemdsystemunitdir)
    if(_nfq_pc_unitdir)
      set(_nfq_unitdir ${_nfq_pc_unitdir})
    endif()
  endif()
  set(NFQ_SYSTEMD_UNITDIR ${_nfq_unitdir} CACHE PATH "Directory for the systemd unit")
endif()
set(NFQ_ENVIRONMENT_DIR /etc/default CACHE PATH "Directory for the environment file nfq-apeeper")

# The unit in the source tree names /usr/sbin and /etc/default; the installed copy names the
# configured places.
set(_nfq_unit_src ${PROJECT_SOURCE_DIR}/scripts/systemd/nfq-apeeper.service)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${_nfq_unit_src})
file(READ ${_nfq_unit_src} _nfq_unit)
string(REPLACE "/usr/sbin/" "${CMAKE_INSTALL_FULL_SBINDIR}/" _nfq_unit "${_nfq_unit}")
string(REPLACE "/etc/default/nfq-apeeper" "${NFQ_ENVIRONMENT_DIR}/nfq-apeeper" _nfq_unit "${_nfq_unit}")
string(REPLACE "/usr/share/doc/nfq-apeeper/" "${CMAKE_INSTALL_FULL_DOCDIR}/" _nfq_unit "${_nfq_unit}")
file(WRITE ${PROJECT_BINARY_DIR}/nfq-apeeper.service "${_nfq_unit}")

# Relative to the prefix where possible: CPack RPM marks files with absolute destinations %config.
string(REGEX REPLACE "^${CMAKE_INSTALL_PREFIX}/" "" _nfq_unit_dest "${NFQ_SYSTEMD_UNITDIR}")
install(FILES ${PROJECT_BINARY_DIR}/nfq-apeeper.service DESTINATION ${_nfq_unit_dest})
# 0600: it holds the factory URL. A conffile / %config(noreplace): upgrades never overwrite it.
install(FILES scripts/systemd/nfq-apeeper.default DESTINATION ${NFQ_ENVIRONMENT_DIR}
        RENAME nfq-apeeper PERMISSIONS OWNER_READ OWNER_WRITE)
install(FILES README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})

# --- CPack ------------------------------------------------------------------------------------
set(CPACK_PACKAGE_NAME nfq-apeeper)
set(CPACK_PACKAGE_VENDOR "nfq-apeeper")
set(CPACK_PACKAGE_CONTACT "nfq-apeeper maintainers <root@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "EC2 metadata-service canary: alerts a Canary token on metadata requests")
set(CPACK_PACKAGE_DESCRIPTION
    "nfq-apeeper watches outbound requests to the EC2 instance metadata service (169.254.169.254,\n\
fd00:ec2::254) through an NFQUEUE, never blocking them, and alerts a Canary token console.\n\
Installing the package starts nothing; see /usr/share/doc/nfq-apeeper/deploy.md.")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_GENERATOR DEB RPM)
set(CPACK_PACKAGE_DIRECTORY ${PROJECT_BINARY_DIR}/packages)
set(CPACK_STRIP_FILES ON)

# Debian / Ubuntu. Library dependencies come from dpkg-shlibdeps (libnetfilter-queue1, libmnl0,
# libcurl4, libfmt9, libsystemd0, libstdc++6, libc6 with the versions this build needs).
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "iptables, util-linux")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "nftables")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/cmake/packaging/deb/conffiles ${PROJECT_SOURCE_DIR}/cmake/packaging/deb/postinst
    ${PROJECT_SOURCE_DIR}/cmake/packaging/deb/prerm ${PROJECT_SOURCE_DIR}/cmake/packaging/deb/postrm)

# Amazon Linux / RHEL / Fedora. Library requirements come from rpm's automatic soname scan; an
# .rpm is only usable on the distribution it was built on (build it there: docs/deploy.md).
set(CPACK_RPM_FILE_NAME RPM-DEFAULT)
set(CPACK_RPM_PACKAGE_RELEASE 1)
set(CPACK_RPM_PACKAGE_LICENSE "Proprietary")
set(CPACK_RPM_PACKAGE_GROUP "System Environment/Daemons")
set(CPACK_RPM_PACKAGE_AUTOREQ ON)
set(CPACK_RPM_PACKAGE_RELOCATABLE OFF)
set(CPACK_RPM_SPEC_MORE_DEFINE "%define _build_id_links none")
set(CPACK_RPM_PACKAGE_REQUIRES "(iptables-nft or iptables or iptables-legacy), util-linux, systemd")
set(CPACK_RPM_POST_INSTALL_SCRIPT_FILE ${PROJECT_SOURCE_DIR}/cmake/packaging/rpm/post.sh)
set(CPACK_RPM_PRE_UNINSTALL_SCRIPT_FILE ${PROJECT_SOURCE_DIR}/cmake/packaging/rpm/preun.sh)
set(CPACK_RPM_POST_UNINSTALL_SCRIPT_FILE ${PROJECT_SOURCE_DIR}/cmake/packaging/rpm/postun.sh)
set(CPACK_RPM_USER_FILELIST "%config(noreplace) ${NFQ_ENVIRONMENT_DIR}/nfq-apeeper")
set(CPACK_RPM_EXCLUDE_FROM_AUTO_FILELIST_ADDITION
    /etc/default /lib /lib/systemd /lib/systemd/system /usr/lib/systemd /usr/lib/systemd/system
    /usr/sbin /usr/share/doc)

include(CPack)
