// The nfq-apeeper daemon: options in, exit status out (0 clean stop, 1 cannot start,
// 2 usage error). Owns every thread it starts; never calls exit().
#pragma once

namespace nfq::sensor {

// REQUIRES: called from main before any other thread exists (it blocks signals for every
// thread it creates and initialises libcurl once).
int RunDaemon(int argc, char** argv);

}  // namespace nfq::sensor
