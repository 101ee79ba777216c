# rsre_embed(OUT_C SYMBOL FILE): generate a C file holding FILE's bytes as
# `const unsigned char SYMBOL[]` and `const size_t SYMBOL_len`, rebuilt when FILE changes.
function(rsre_embed out_c symbol file)
  add_custom_command(
    OUTPUT ${out_c}
    COMMAND ${CMAKE_COMMAND} -DIN=${file} -DOUT=${out_c} -DSYM=${symbol}
            -P ${PROJECT_SOURCE_DIR}/cmake/embed_run.cmake
    DEPENDS ${file} ${PROJECT_SOURCE_DIR}/cmake/embed_run.cmake
    COMMENT "Embedding ${file} as ${symbol}")
endfunction()
