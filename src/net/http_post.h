// One HTTP POST with libcurl, the response body handed over as it arrives (a streamed reply read
// line by line), for `gptrain judge`. No retries here: the caller decides what is worth retrying.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace gptrain::net {

struct PostResult {
  bool connected = false;  // false: no HTTP response at all (refused, timed out, DNS); see error
  long status = 0;
  std::string error;       // curl's message when the transfer failed
  double retry_after_s = -1;  // the Retry-After header's seconds, -1 when absent
  std::string body;        // the whole body when no on_data was given
};

// Posts `body` (JSON) to `url` with `headers` ("Name: value"). on_data, when given, receives the
// body as it arrives; returning false aborts the transfer. timeout_s bounds the whole transfer.
PostResult http_post(const std::string& url, const std::string& body, const std::vector<std::string>& headers,
                     double timeout_s, const std::function<bool(std::string_view)>& on_data = {});

}  // namespace gptrain::net
