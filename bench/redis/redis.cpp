// asio_futures_redis_bench: remote futures on Redis vs the broker's own limit.
//
//   queue_throughput/W   W workers (each on its own thread and io_context, standing in for
//                        worker processes), one caller thread: batches of 1000 jobs
//                        submitted, then gathered. Counter jobs_per_s.
//   queue_latency        one job at a time, submit -> result (round trip), 1 worker.
//   floor_throughput     the same Redis commands per job (XADD, XREADGROUP, the worker's
//                        begin and finish scripts) from a hand-written hiredis loop,
//                        pipelined 1000 jobs at a time: what the broker can do at best.
//                        Counter jobs_per_s.
//   floor_latency        one job's commands in the round trips our path needs, synchronous.
// The worker's scripts go as EVALSHA in both (loaded once with SCRIPT LOAD).
// Each benchmark starts its own redis-server (test/redis/support/redis_server.hpp) on a free
// loopback port; the server's path comes from ASIO_FUTURES_REDIS_SERVER or PATH.
#include <asio_futures/asio_futures.hpp>
#include <asio_futures/redis.hpp>

#include "protocol.hpp" // the worker's Lua scripts (src/redis)
#include "support/redis_server.hpp"

#include <benchmark/benchmark.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <hiredis/hiredis.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace af = asio_futures;
namespace afr = asio_futures::redis;
namespace asio = boost::asio;

namespace {

constexpr int batch = 1000;

/// W workers, each on its own thread and io_context.
class worker_pool {
public:
  worker_pool(const afr::endpoint& ep, int n) {
    for (int i = 0; i < n; ++i) {
      auto& s = slots_.emplace_back(std::make_unique<slot>());
      afr::worker_options o;
      // For jobs this short the concurrency is the worker's pipeline depth (jobs between
      // their XREADGROUP and their result); the floor pipelines 1000. 64 reaches about 60 %
      // of the floor here, 256 about 90 % (docs/distributed.md).
      o.concurrency = 256;
      s->w = std::make_unique<afr::worker>(s->ioc.get_executor(), ep, "bench", o);
      s->w->handle_bytes("", [](std::string p) -> asio::awaitable<std::string> { co_return p; });
      s->run = af::create_task(s->ioc, s->w->async_run());
      s->thread = std::thread([&ioc = s->ioc] { ioc.run(); });
    }
  }
  ~worker_pool() {
    for (auto& s : slots_)
      s->w->stop();
    for (auto& s : slots_)
      s->thread.join();
  }

private:
  struct slot {
    asio::io_context ioc;
    std::unique_ptr<afr::worker> w;
    af::task<void> run;
    std::thread thread;
  };
  std::vector<std::unique_ptr<slot>> slots_;
};

void queue_throughput(benchmark::State& state) {
  asio_futures_test::redis_server srv;
  worker_pool workers(srv.endpoint(), static_cast<int>(state.range(0)));
  asio::io_context ioc;
  afr::job_queue q(ioc.get_executor(), srv.endpoint(), "bench");
  const std::string payload(64, 'x');
  std::int64_t jobs = 0;
  for (auto _ : state) {
    std::vector<af::future<std::string>> fs;
    fs.reserve(batch);
    for (int i = 0; i < batch; ++i)
      fs.push_back(q.submit(payload));
    auto all = af::gather(fs);
    while (!all.done())
      ioc.run_one();
    if (all.result().size() != batch)
      state.SkipWithError("wrong result count");
    jobs += batch;
  }
  state.counters["jobs_per_s"] =
      benchmark::Counter(static_cast<double>(jobs), benchmark::Counter::kIsRate);
  q.close();
  ioc.run();
}
BENCHMARK(queue_throughput)->Arg(1)->Arg(4)->Unit(benchmark::kMillisecond)->UseRealTime();

void queue_latency(benchmark::State& state) {
  asio_futures_test::redis_server srv;
  worker_pool workers(srv.endpoint(), 1);
  asio::io_context ioc;
  afr::job_queue q(ioc.get_executor(), srv.endpoint(), "bench");
  for (auto _ : state) {
    auto f = q.submit("x");
    while (!f.done())
      ioc.run_one();
    benchmark::DoNotOptimize(f.result());
  }
  q.close();
  ioc.run();
}
BENCHMARK(queue_latency)->Unit(benchmark::kMicrosecond)->UseRealTime();

// --- the floor: a hand-written hiredis loop ------------------------------------------------
struct sync_redis {
  explicit sync_redis(std::uint16_t port) : c(redisConnect("127.0.0.1", port)) {
    if (!c || c->err)
      throw std::runtime_error("floor: cannot connect");
  }
  ~sync_redis() { redisFree(c); }
  void append(std::initializer_list<std::string> args) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    for (auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    redisAppendCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data());
    ++queued;
  }
  /// Reads every queued reply; returns the last one (caller frees) or nullptr.
  redisReply* drain() {
    redisReply* last = nullptr;
    for (; queued > 0; --queued) {
      void* r = nullptr;
      if (redisGetReply(c, &r) != REDIS_OK)
        throw std::runtime_error("floor: connection failed");
      if (last)
        freeReplyObject(last);
      last = static_cast<redisReply*>(r);
    }
    return last;
  }
  redisContext* c;
  int queued = 0;
};

/// The stream ids of an XREADGROUP reply.
std::vector<std::string> ids_of(const redisReply* r) {
  std::vector<std::string> ids;
  if (!r || r->type != REDIS_REPLY_ARRAY || r->elements == 0)
    return ids;
  const redisReply* entries = r->element[0]->element[1];
  for (std::size_t i = 0; i < entries->elements; ++i)
    ids.emplace_back(entries->element[i]->element[0]->str, entries->element[i]->element[0]->len);
  return ids;
}

/// The worker's scripts' SHA1s, loaded once (SCRIPT LOAD), as the worker does.
struct floor_scripts {
  std::string begin, finish;
};

std::string load_script(sync_redis& r, std::string_view body) {
  r.append({"SCRIPT", "LOAD", std::string(body)});
  redisReply* rep = r.drain();
  if (!rep || rep->type != REDIS_REPLY_STRING)
    throw std::runtime_error("floor: SCRIPT LOAD failed");
  std::string sha(rep->str, rep->len);
  freeReplyObject(rep);
  return sha;
}

floor_scripts load_scripts(sync_redis& r) {
  return {load_script(r, asio_futures::redis::detail::begin_script),
          load_script(r, asio_futures::redis::detail::finish_script)};
}

void run_floor_jobs(sync_redis& caller, sync_redis& worker, const floor_scripts& sc, int n,
                    const std::string& payload, std::int64_t& counter) {
  for (int i = 0; i < n; ++i) {
    auto id = std::to_string(counter + i);
    caller.append(
        {"XADD", "floor:jobs", "*", "id", id, "fn", "", "payload", payload, "reply", "floor:done"});
  }
  if (auto* r = caller.drain())
    freeReplyObject(r);
  worker.append({"XREADGROUP", "GROUP", "floor:workers", "w", "COUNT", std::to_string(n), "STREAMS",
                 "floor:jobs", ">"});
  redisReply* read = worker.drain();
  auto ids = ids_of(read);
  freeReplyObject(read);
  // The worker's two scripts per job (see src/redis/protocol.hpp), as the worker sends them
  // (EVALSHA of the scripts loaded beforehand).
  for (std::size_t k = 0; k < ids.size(); ++k) {
    auto id = std::to_string(counter + static_cast<std::int64_t>(k));
    worker.append({"EVALSHA", sc.begin, "3", "floor:attempts:" + id, "floor:cancel:" + id,
                   "floor:result:" + id, "86400", ids[k], "w." + id});
    worker.append({"EVALSHA", sc.finish, "3", "floor:result:" + id, "floor:jobs",
                   "floor:attempts:" + id, "1", "v" + payload, "86400", "floor:done", id,
                   "floor:workers", ids[k]});
  }
  if (auto* r = worker.drain())
    freeReplyObject(r);
  for (std::size_t k = 0; k < ids.size(); ++k)
    caller.append(
        {"GET", "floor:result:" + std::to_string(counter + static_cast<std::int64_t>(k))});
  if (auto* r = caller.drain())
    freeReplyObject(r);
  counter += n;
}

void floor_throughput(benchmark::State& state) {
  asio_futures_test::redis_server srv;
  srv.cli({"XGROUP", "CREATE", "floor:jobs", "floor:workers", "0", "MKSTREAM"});
  sync_redis caller(srv.port()), worker(srv.port());
  const floor_scripts sc = load_scripts(worker);
  const std::string payload(64, 'x');
  std::int64_t counter = 0;
  for (auto _ : state)
    run_floor_jobs(caller, worker, sc, batch, payload, counter);
  state.counters["jobs_per_s"] =
      benchmark::Counter(static_cast<double>(counter), benchmark::Counter::kIsRate);
}
BENCHMARK(floor_throughput)->Unit(benchmark::kMillisecond)->UseRealTime();

void floor_latency(benchmark::State& state) {
  asio_futures_test::redis_server srv;
  srv.cli({"XGROUP", "CREATE", "floor:jobs", "floor:workers", "0", "MKSTREAM"});
  sync_redis caller(srv.port()), worker(srv.port());
  const floor_scripts sc = load_scripts(worker);
  std::int64_t counter = 0;
  for (auto _ : state)
    run_floor_jobs(caller, worker, sc, 1, "x", counter);
}
BENCHMARK(floor_latency)->Unit(benchmark::kMicrosecond)->UseRealTime();

} // namespace

BENCHMARK_MAIN();
