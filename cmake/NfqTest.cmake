# nfq_add_test(NAME name SOURCES a.cc... LIBS lib...)
# The one way a unit test is added: GoogleTest main, warnings, ctest discovery.
include(GoogleTest)
function(nfq_add_test)
  cmake_parse_arguments(T "" "NAME" "SOURCES;LIBS" ${ARGN})
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main Threads::Threads)
  nfq_warnings(${T_NAME})
  # Tests are named <binary>.<Suite>.<Test>, so `ctest -R '^rules_test\.'` picks a module.
  gtest_discover_tests(${T_NAME} TEST_PREFIX "${T_NAME}." DISCOVERY_TIMEOUT 30
                       PROPERTIES LABELS unit)
endfunction()
