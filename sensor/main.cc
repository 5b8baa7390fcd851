#include "sensor/daemon.h"

int main(int argc, char** argv) { return nfq::sensor::RunDaemon(argc, argv); }
