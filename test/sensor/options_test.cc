#include "sensor/options.h"

#include <gtest/gtest.h>

#include <fstream>
#include <initializer_list>
#include <string>
#include <vector>

namespace nfq::sensor {
namespace {

ParseOutcome Parse(std::initializer_list<const char*> args, const char* env = nullptr) {
  std::vector<std::string> storage{"nfq-apeeper"};
  for (const char* a : args) storage.emplace_back(a);
  std::vector<char*> argv;
  for (auto& s : storage) argv.push_back(s.data());
  argv.push_back(nullptr);
  return ParseOptions(static_cast<int>(storage.size()), argv.data(), env);
}

TEST(OptionsTest, DefaultsAlertOnEverything) {
  auto out = Parse({});
  ASSERT_TRUE(out.options) << out.error;
  EXPECT_FALSE(out.options->blacklist);
  EXPECT_FALSE(out.options->whitelist);
  EXPECT_EQ(out.options->queue_num, 0);
  EXPECT_EQ(out.options->state_dir, "/var/lib/nfq-apeeper");
  EXPECT_EQ(out.options->fold_window_seconds, 60u);
}

TEST(OptionsTest, ApeeperHabitsStillWork) {
  auto out = Parse({"-a", "https://x.canary.tools/factory", "-b", "/latest/meta-data/"});
  ASSERT_TRUE(out.options) << out.error;
  EXPECT_EQ(out.options->factory_url, "https://x.canary.tools/factory");
  EXPECT_EQ(*out.options->blacklist, "/latest/meta-data/");
}

TEST(OptionsTest, BlacklistWithWhitelistIsAUsageError) {
  auto out = Parse({"-b", "/a", "-w", "/b"});
  EXPECT_FALSE(out.options);
  EXPECT_NE(out.error.find("together"), std::string::npos);
}

TEST(OptionsTest, AListGivenTwiceIsAUsageError) {
  auto out = Parse({"-b", "/a", "--blacklist", "/b"});
  EXPECT_FALSE(out.options);
  EXPECT_NE(out.error.find("given twice"), std::string::npos) << out.error;
  EXPECT_FALSE(Parse({"-w", "/a", "-w", "/b"}).options);
}

TEST(OptionsTest, BackoffInitialAboveMaxIsAUsageError) {
  auto out = Parse({"--backoff-initial-ms", "5000", "--backoff-max-ms", "1000"});
  EXPECT_FALSE(out.options);
  EXPECT_NE(out.error.find("--backoff-initial-ms"), std::string::npos) << out.error;
  EXPECT_TRUE(Parse({"--backoff-initial-ms", "5000"}).options);  // max stays the default
}

TEST(OptionsTest, EmptyListsAreUsageErrors) {
  EXPECT_FALSE(Parse({"-a", ""}).options);
  EXPECT_FALSE(Parse({"-b", ""}).options);
  EXPECT_FALSE(Parse({"--whitelist", "  "}).options);
}

TEST(OptionsTest, BadNumbersNameTheOption) {
  for (const char* bad : {"-1", "65536", "x", "", "1e3", "0x10"}) {
    auto out = Parse({"--queue-num", bad});
    EXPECT_FALSE(out.options) << bad;
    EXPECT_NE(out.error.find("--queue-num"), std::string::npos) << out.error;
  }
  EXPECT_EQ(Parse({"--queue-num", "65535"}).options->queue_num, 65535);
}

TEST(OptionsTest, UnknownAndIncompleteOptions) {
  EXPECT_NE(Parse({"--bogus"}).error.find("unknown option --bogus"), std::string::npos);
  EXPECT_NE(Parse({"-z"}).error.find("unknown option -z"), std::string::npos);
  EXPECT_NE(Parse({"--queue-num"}).error.find("needs a value"), std::string::npos);
  EXPECT_NE(Parse({"-b"}).error.find("needs a value"), std::string::npos);
  EXPECT_NE(Parse({"-b", "/a", "/b"}).error.find("unexpected argument"), std::string::npos);
}

TEST(OptionsTest, LogFormat) {
  EXPECT_EQ(Parse({"--log-format", "json"}).options->log_format, LogFormat::kJson);
  EXPECT_FALSE(Parse({"--log-format", "xml"}).options);
}

TEST(OptionsTest, EventLogFoldsUnlessEveryRequestIsAskedFor) {
  EXPECT_FALSE(Parse({}).options->log_every_request);
  EXPECT_TRUE(Parse({"--log-every-request"}).options->log_every_request);
  EXPECT_FALSE(Parse({"--log-every-request=yes"}).options);
}

TEST(OptionsTest, FactoryFromEnvironmentAndFile) {
  EXPECT_EQ(Parse({}, "https://env.example/f").options->factory_url, "https://env.example/f");
  EXPECT_EQ(Parse({"-a", "https://cli.example/f"}, "https://env.example/f").options->factory_url,
            "https://cli.example/f");
  const std::string path = ::testing::TempDir() + "/factory";
  std::ofstream(path) << "  https://file.example/f  \n";
  EXPECT_EQ(Parse({"--factory-file", path.c_str()}).options->factory_url, "https://file.example/f");
  EXPECT_FALSE(Parse({"--factory-file", "/nonexistent/x"}).options);
  EXPECT_FALSE(Parse({"-a", "ftp://x/"}).options);
}

TEST(OptionsTest, PathListFromFile) {
  const std::string path = ::testing::TempDir() + "/paths";
  std::ofstream(path) << "# comment\n/latest/meta-data/iam\n\n/latest/user-data # inline\n";
  std::string error;
  auto expanded = ExpandPathList("@" + path, &error);
  ASSERT_TRUE(expanded) << error;
  EXPECT_EQ(*expanded, "/latest/meta-data/iam,/latest/user-data");
  EXPECT_FALSE(ExpandPathList("@/nonexistent", &error));
  EXPECT_EQ(*ExpandPathList("/a,/b", &error), "/a,/b");
}

TEST(OptionsTest, RedactUrlKeepsOnlySchemeAndHost) {
  EXPECT_EQ(RedactUrl("https://abc.canary.tools/apeeper/factory/SECRET?x=1"), "https://abc.canary.tools");
  EXPECT_EQ(RedactUrl("http://user:pw@host:8080/secret"), "http://host:8080");
  EXPECT_EQ(RedactUrl("nonsense"), "<url>");
}

}  // namespace
}  // namespace nfq::sensor
