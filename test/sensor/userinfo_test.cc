#include "sensor/userinfo.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace nfq::sensor {
namespace {

std::string Redacted(std::string target, bool cut = false) {
  RedactTargetInPlace(&target, cut);
  return target;
}

TEST(RedactTarget, UserinfoGoesWhereverAUrlNamesItsServer) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"http://admin:pw@169.254.169.254/latest/", "http://<redacted>@169.254.169.254/latest/"},
      // Quotes are legal sub-delims in a userinfo; spaces and tabs are not, but are sent.
      {"http://admin:pa'ss@169.254.169.254/latest/", "http://<redacted>@169.254.169.254/latest/"},
      {"http://admin:pa\"ss@169.254.169.254/", "http://<redacted>@169.254.169.254/"},
      {"http://admin:pa ss@169.254.169.254/", "http://<redacted>@169.254.169.254/"},
      {"http://admin:pa\tss@169.254.169.254/", "http://<redacted>@169.254.169.254/"},
      {"HTTP://a:b@c@169.254.169.254?x", "HTTP://<redacted>@169.254.169.254?x"},
      {"http://u:p@h#frag", "http://<redacted>@h#frag"},
      {"http://token@h/", "http://<redacted>@h/"},
      {"http://@h/", "http://<redacted>@h/"},
      {"/?u=http://u:p@elsewhere/x&v=https://v:q@e2", "/?u=http://<redacted>@elsewhere/x&v=https://<redacted>@e2"},
      // A URL in the path, scheme-relative ones, an encoded one in the query.
      {"/latest/http://admin:hunter2@evil/", "/latest/http://<redacted>@evil/"},
      {"http://http://admin:hunter2@169.254.169.254/", "http://http://<redacted>@169.254.169.254/"},
      {"//admin:hunter2@169.254.169.254/latest/", "//<redacted>@169.254.169.254/latest/"},
      {"/latest/?u=//token@evil/", "/latest/?u=//<redacted>@evil/"},
      {"/latest/?u=http%3A%2F%2Fadmin%3Ahunter2%40evil.example%2F", "/latest/?u=http%3A%2F%2F<redacted>%40evil.example%2F"},
      {"/?u=http%3a%2f%2ftoken%40evil&x=1", "/?u=http%3a%2f%2f<redacted>%40evil&x=1"},
      // A colon before an '@' within one segment: "user:pw@" wherever it stands.
      {"http:/admin:hunter2@169.254.169.254/", "http:/<redacted>@169.254.169.254/"},
      {"/x/admin:hunter2@h/y", "/x/<redacted>@h/y"},
      {"/?proxy=admin:hunter2@h", "/?<redacted>@h"},
      // '=', '&' and ';' are legal in a password: they do not start a segment.
      {"/x/admin:abcSECRET=@169.254.169.254/", "/x/<redacted>@169.254.169.254/"},
      {"/?proxy=admin:pSECRET&w;v@h", "/?<redacted>@h"},
      {"http:/admin:abc=SECRET@169.254.169.254/", "http:/<redacted>@169.254.169.254/"},
      // Authority form, read by the path rules as a bare path.
      {"admin:pw@169.254.169.254:80/latest/", "<redacted>@169.254.169.254:80/latest/"},
      {"admin:pw@169.254.169.254:80", "<redacted>@169.254.169.254:80"},
      // Nothing to redact: '@' in IAM role names, MAC addresses, IPv6 literals, a bare host.
      {"/latest/meta-data/iam/security-credentials/role@corp", "/latest/meta-data/iam/security-credentials/role@corp"},
      {"/latest/meta-data/network/interfaces/macs/02:29:96:8f:6a:2d/device-number",
       "/latest/meta-data/network/interfaces/macs/02:29:96:8f:6a:2d/device-number"},
      {"http://169.254.169.254/a@b", "http://169.254.169.254/a@b"},
      {"http://[fd00:ec2::254]/latest/", "http://[fd00:ec2::254]/latest/"},
      {"http://169.254.169.254", "http://169.254.169.254"},
      {"/latest//meta-data/x@y", "/latest//meta-data/x@y"},
      {"latest/meta-data@", "latest/meta-data@"},
      {"/latest/?next=http://example.com", "/latest/?next=http://example.com"},
      {"*", "*"},
      {"", ""},
      {"://", "://"},
      {"%2F%2F", "%2F%2F"},
  };
  for (const auto& [target, expected] : cases) {
    std::string text = target;
    const bool changed = RedactTargetInPlace(&text, /*target_cut=*/false);
    EXPECT_EQ(text, expected) << target;
    EXPECT_EQ(changed, text != target) << target;
  }
}

TEST(RedactTarget, EveryCutOfAUserinfoTargetHidesThePassword) {
  // A request line cut (FIN, hole, cap) anywhere: what is left of the password never shows.
  for (const std::string full : {"http://admin:hunter2@169.254.169.254/latest/",
                                 "admin:hunter2@169.254.169.254:80/latest/",
                                 "/?u=http%3A%2F%2Fadmin%3Ahunter2%40evil%2F",
                                 "http://admin:hunter2@ssWORD@169.254.169.254/latest/",
                                 "/x/admin:hunter2=&;@169.254.169.254/latest/",
                                 "/?proxy=admin:hunter2@h&x=1"}) {
    for (size_t n = 0; n <= full.size(); ++n) {
      const std::string text = Redacted(full.substr(0, n), /*cut=*/true);
      for (size_t k = 2; k <= 7; ++k) {
        EXPECT_EQ(text.find(std::string("hunter2").substr(0, k)), std::string::npos) << n << ": " << text;
      }
      // A cut before the ':' leaves a bare word, which a path may be ("/x/admin").
      EXPECT_EQ(text.find("admin:"), std::string::npos) << n << ": " << text;
      if (full.find("//") != std::string::npos) {
        EXPECT_EQ(text.find("admin"), std::string::npos) << n << ": " << text;
      }
    }
  }
  EXPECT_EQ(Redacted("http://admin:hunter2", true), "http://<redacted>");
  // Cut after a raw '@' in the password, and cuts of the forms without "//".
  EXPECT_EQ(Redacted("http://admin:p@ssWORD", true), "http://<redacted>");
  EXPECT_EQ(Redacted("admin:p@ssWORD", true), "<redacted>");
  EXPECT_EQ(Redacted("/?u=http%3A%2F%2Fadmin%3Ap%40ssWORD", true), "/?u=http%3A%2F%2F<redacted>");
  EXPECT_EQ(Redacted("/x/admin:SECRET", true), "/x/<redacted>");
  EXPECT_EQ(Redacted("http:/admin:SECRET", true), "http:/<redacted>");
  EXPECT_EQ(Redacted("/?proxy=admin:SECRET", true), "/?<redacted>");
  EXPECT_EQ(Redacted("/x/admin:" + std::string(9000, 'S'), true), "/x/<redacted>");
  EXPECT_EQ(Redacted("admin:hunt", true), "<redacted>");
  EXPECT_EQ(Redacted(std::string("admin:") + std::string(9000, 'S'), true), "<redacted>");
  // Not cut: the host stays; cut after the authority: it stays too.
  EXPECT_EQ(Redacted("http://169.254.169.254"), "http://169.254.169.254");
  EXPECT_EQ(Redacted("http://169.254.169.254/lat", true), "http://169.254.169.254/lat");
  EXPECT_EQ(Redacted("/latest/meta-da", true), "/latest/meta-da");
}

TEST(RedactTarget, HostileInputNeverReadsOutOfBounds) {
  // Runs under ASan in CI: every prefix of targets full of the characters the scanner keys on.
  const std::string hostile = "%2f%2F%3a%40@:/?#&=;//%2%3A%2F%2F@@::%40%";
  for (size_t from = 0; from < hostile.size(); ++from) {
    for (size_t n = 0; from + n <= hostile.size(); ++n) {
      for (const bool cut : {false, true}) {
        std::string text = hostile.substr(from, n);
        RedactTargetInPlace(&text, cut);
        std::string again = text;
        RedactTargetInPlace(&again, cut);  // redacting twice changes nothing more
        EXPECT_EQ(again.find("<redacted><redacted>"), std::string::npos) << text;
      }
    }
  }
}

TEST(RedactHost, EverythingBeforeTheLastAtSignGoes) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"admin:hunter2@169.254.169.254", "<redacted>@169.254.169.254"},
      {"a@b@169.254.169.254:80", "<redacted>@169.254.169.254:80"},
      {"169.254.169.254", "169.254.169.254"},
      {"[fd00:ec2::254]", "[fd00:ec2::254]"},
      {"", ""},
  };
  for (const auto& [host, expected] : cases) {
    std::string text = host;
    RedactHostInPlace(&text, /*host_cut=*/false);
    EXPECT_EQ(text, expected) << host;
  }
  for (std::string cut : {std::string("admin:hunt"), std::string("admin:p@ssWORD"), "admin:p@ss" + std::string(600, 'W')}) {
    RedactHostInPlace(&cut, /*host_cut=*/true);
    EXPECT_EQ(cut, "<redacted>");
  }
}

}  // namespace
}  // namespace nfq::sensor
