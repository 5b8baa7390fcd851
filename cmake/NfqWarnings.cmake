# nfq_warnings(target): the project's warning set, errors in CI (NFQ_WERROR).
option(NFQ_WERROR "Treat warnings as errors" OFF)
function(nfq_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
    -Wnon-virtual-dtor -Wold-style-cast -Woverloaded-virtual -Wimplicit-fallthrough
    $<$<BOOL:${NFQ_WERROR}>:-Werror>)
endfunction()
