// Entry point of asio_futures_bench.
//
// docs/speed-targets.md asks for peers in the same run, randomly interleaved, with at least
// ten repetitions and medians compared: a single run here varies up to 1.7x (3x
// across threads). So unless the caller chose otherwise, main() adds
//   --benchmark_enable_random_interleaving=true
//   --benchmark_repetitions=10
//   --benchmark_report_aggregates_only=true
// and records the compiler, Boost and Asio versions in the JSON "context" so that
// bench/report can describe the machine.
//
// It also fixes glibc malloc's mmap and trim thresholds. By default glibc moves them at run
// time (freeing a large mmapped block raises both), so with randomly interleaved benchmarks
// one benchmark's allocations changed the next one's costs (a batch of Boost.Fiber stacks
// ran 6x slower after a benchmark whose 128 KiB stacks had moved the thresholds), and the
// scaling benchmarks' heap was returned to the kernel and faulted in again on every round.
// With fixed thresholds (blocks < 32 MiB from the heap, freed memory kept) every benchmark
// sees the same allocator, whatever ran before it.
//
// Benchmark names are "<scenario>/<impl>" ("ready_roundtrip/asio_futures",
// "ready_roundtrip/std_future", ...): bench/report groups by scenario and computes
// the ratio of "asio_futures" to every other impl of the same scenario.

#include <benchmark/benchmark.h>

#include <boost/asio/version.hpp>
#include <boost/version.hpp>

#include <malloc.h>

#include <string>
#include <string_view>
#include <vector>

namespace {

bool has_flag(int argc, char** argv, std::string_view name) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg.starts_with(name) && (arg.size() == name.size() || arg[name.size()] == '='))
      return true;
  }
  return false;
}

std::string compiler_version() {
#if defined(__clang__)
  return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("g++ ") + __VERSION__;
#else
  return "unknown";
#endif
}

} // namespace

int main(int argc, char** argv) {
  mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024); // also turns the dynamic thresholds off
  mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024);
  std::vector<char*> args(argv, argv + argc);
  std::string interleave = "--benchmark_enable_random_interleaving=true";
  std::string repetitions = "--benchmark_repetitions=10";
  std::string aggregates = "--benchmark_report_aggregates_only=true";
  if (!has_flag(argc, argv, "--benchmark_enable_random_interleaving"))
    args.push_back(interleave.data());
  if (!has_flag(argc, argv, "--benchmark_repetitions"))
    args.push_back(repetitions.data());
  if (!has_flag(argc, argv, "--benchmark_report_aggregates_only") &&
      !has_flag(argc, argv, "--benchmark_display_aggregates_only"))
    args.push_back(aggregates.data());
  args.push_back(nullptr);
  int new_argc = static_cast<int>(args.size()) - 1;

  benchmark::AddCustomContext("compiler", compiler_version());
  benchmark::AddCustomContext("boost_version", std::to_string(BOOST_VERSION / 100000) + "." +
                                                   std::to_string(BOOST_VERSION / 100 % 1000) +
                                                   "." + std::to_string(BOOST_VERSION % 100));
  // The Asio the benchmark was built with: not always the Boost release's own (a newer Asio's
  // headers can be laid over an older Boost).
  benchmark::AddCustomContext("asio_version", std::to_string(BOOST_ASIO_VERSION / 100000) + "." +
                                                  std::to_string(BOOST_ASIO_VERSION / 100 % 1000) +
                                                  "." + std::to_string(BOOST_ASIO_VERSION % 100));
#if defined(NDEBUG)
  benchmark::AddCustomContext("asio_futures_build", "release (NDEBUG)");
#else
  benchmark::AddCustomContext("asio_futures_build", "debug (assertions on)");
#endif

  benchmark::Initialize(&new_argc, args.data());
  if (benchmark::ReportUnrecognizedArguments(new_argc, args.data()))
    return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
