# gptrain info prints the book's parameter counts for every preset, with and without qkv bias.
function(expect_info args expected)
  execute_process(COMMAND ${GPTRAIN} info ${args} OUTPUT_VARIABLE out RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "gptrain info ${args} exited ${rc}: ${out}")
  endif()
  foreach(e ${expected})
    string(FIND "${out}" "${e}" pos)
    if(pos EQUAL -1)
      message(FATAL_ERROR "gptrain info ${args}: expected '${e}' in:\n${out}")
    endif()
  endforeach()
endfunction()
expect_info("--init;gpt2-small" "163,009,536;124,412,160;621.83 MB")
expect_info("--init;gpt2-medium" "406,212,608;354,749,440;1549.58 MB")
expect_info("--init;gpt2-large" "838,220,800;773,891,840;3197.56 MB")
expect_info("--init;gpt2-xl" "1,637,792,000;1,557,380,800;6247.68 MB")
expect_info("--init;gpt2-small;--qkv-bias" "163,037,184;124,439,808")
# memory of a run: the KV cache of one sequence is 2 (keys, values) x 12 layers x 256 positions x
# 768 x 4 bytes = 18.00 MiB; training activations for the batch are reported
expect_info("--init;gpt2-small;--context-length;256;--batch-size;2"
  "162,419,712;KV cache                  18.00 MB;activations;training, batch 2 x 256 tokens")
# the book's ch06 freezing of a gpt2-small classifier: last block + final norm + head = 7,090,946
expect_info("--init;gpt2-small;--qkv-bias;--classes;2;--trainable;last-block"
  "7,090,946;the last block, the final norm and the head;2 classes (last pooling)")
execute_process(COMMAND ${GPTRAIN} info --init gpt2-huge RESULT_VARIABLE rc ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT err MATCHES "gpt2-huge")
  message(FATAL_ERROR "an unknown preset must fail naming it; got rc=${rc} err=${err}")
endif()
