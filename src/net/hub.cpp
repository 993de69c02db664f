#include "net/hub.h"

#include <cstdlib>
#include <system_error>

#include "net/sha256.h"
#include "util/error.h"

namespace gptrain::net {

namespace fs = std::filesystem;

std::string hub_endpoint(const std::string& cli_value) {
  std::string endpoint = cli_value;
  if (endpoint.empty())
    if (const char* env = std::getenv("HF_ENDPOINT"); env && *env) endpoint = env;
  if (endpoint.empty()) endpoint = "https://huggingface.co";
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  return endpoint;
}

std::string hub_file_url(const std::string& endpoint, const std::string& repo, const std::string& revision,
                         const std::string& file) {
  return endpoint + "/" + repo + "/resolve/" + revision + "/" + file;
}

std::vector<HubFileReport> download_hub_files(const std::string& endpoint, const std::string& repo,
                                              const std::string& revision, const std::vector<std::string>& files,
                                              const fs::path& dir, const DownloadOptions& options,
                                              const std::function<void(const HubFileReport&)>& on_file) {
  if (offline_requested())
    fail("downloads are switched off ($GPTRAIN_OFFLINE or $HF_HUB_OFFLINE is set); unset it to download {} from {}",
         repo, endpoint);
  std::error_code ec;
  std::vector<HubFileReport> reports;
  for (const std::string& name : files) {
    const std::string url = hub_file_url(endpoint, repo, revision, name);
    const RemoteFile remote = probe(url, options);
    fs::create_directories(dir, ec);  // once the Hub has answered
    if (ec) fail("cannot create the directory {}: {}; choose another one with --dir", dir.string(), ec.message());
    HubFileReport report;
    report.name = name;
    report.sha256 = remote.sha256;
    if (!remote.size)
      fail("{} sent no size for {} (neither X-Linked-Size nor Content-Length); is {} a Hugging Face Hub endpoint?",
           endpoint, url, endpoint);
    report.size = *remote.size;
    const fs::path dest = dir / name;
    if (fs::is_regular_file(dest, ec) && fs::file_size(dest, ec) == report.size &&
        (report.sha256.empty() || sha256_file(dest) == report.sha256)) {
      report.already_present = true;
    } else {
      DownloadOptions o = options;
      o.label = name;
      report.download = download_file(url, dest, Expected{remote.size, remote.sha256}, o);
    }
    if (on_file) on_file(report);
    reports.push_back(report);
  }
  return reports;
}

}  // namespace gptrain::net
