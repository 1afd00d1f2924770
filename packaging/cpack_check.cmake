# cpack_check.cmake: read by cpack (CPACK_PROJECT_CONFIG_FILE) before it
# builds a package. The paths compiled into the binary and written into the
# unit come from the build's configure, not from cpack: a package of a build
# configured for /usr/local, or whose pages folder is the source tree, would
# install a service that looks in the wrong places. Refuse it. (CPack hands
# over only CPACK_* variables, hence their names.)
if(NOT CPACK_OSSE_INSTALL_PREFIX STREQUAL CPACK_PACKAGING_INSTALL_PREFIX)
  message(FATAL_ERROR "osse: this build is configured for CMAKE_INSTALL_PREFIX="
    "${CPACK_OSSE_INSTALL_PREFIX}; a package needs a build configured with "
    "-DCMAKE_INSTALL_PREFIX=${CPACK_PACKAGING_INSTALL_PREFIX} "
    "-DOSSE_UI_DIR=${CPACK_PACKAGING_INSTALL_PREFIX}/share/osse/ui")
endif()
if(NOT CPACK_OSSE_UI_DIR STREQUAL "" AND
   NOT CPACK_OSSE_UI_DIR STREQUAL "${CPACK_PACKAGING_INSTALL_PREFIX}/share/osse/ui")
  message(FATAL_ERROR "osse: this build's pages folder is OSSE_UI_DIR=${CPACK_OSSE_UI_DIR}; "
    "a package needs -DOSSE_UI_DIR=${CPACK_PACKAGING_INSTALL_PREFIX}/share/osse/ui")
endif()
