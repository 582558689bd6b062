// A private redis-server for one test: a free loopback port, a temporary directory,
// append-only persistence on, no RDB snapshots.
//
//   redis_server srv;              // started; answers PING when the constructor returns
//   srv.endpoint()                 // for connection/job_queue/worker
//   srv.cli({"GET", "k"})          // a blocking command through hiredis's sync API
//   srv.kill()  / srv.stop()       // SIGKILL / SIGTERM (the AOF is flushed) and reap
//   srv.start() / srv.restart()    // same port, same directory (the data comes back)
//
// Never the system instance: the port is chosen free on 127.0.0.1 and the server binds only
// there. The destructor kills the server and removes the directory, and the child gets
// PR_SET_PDEATHSIG, so a crashing test process leaves no server behind.
#ifndef ASIO_FUTURES_TEST_REDIS_SUPPORT_REDIS_SERVER_HPP
#define ASIO_FUTURES_TEST_REDIS_SUPPORT_REDIS_SERVER_HPP

#include <asio_futures/redis/connection.hpp>

#include <hiredis/hiredis.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace asio_futures_test {

class redis_server {
public:
  /// `extra` are more redis-server arguments (e.g. {"--requirepass", "secret"}).
  explicit redis_server(std::vector<std::string> extra = {}) : extra_(std::move(extra)) {
    char tmpl[] = "/tmp/asio_futures_redis_XXXXXX";
    if (!::mkdtemp(tmpl))
      throw std::runtime_error("redis_server: mkdtemp failed");
    dir_ = tmpl;
    port_ = free_port();
    start();
  }

  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;

  ~redis_server() {
    kill();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::uint16_t port() const { return port_; }

  asio_futures::redis::endpoint endpoint() const {
    asio_futures::redis::endpoint ep;
    ep.host = "127.0.0.1";
    ep.port = port_;
    return ep;
  }

  /// Starts the server (same port and directory as before) and waits, for at most 10 s,
  /// until it answers PING.
  void start() {
    if (pid_ > 0)
      throw std::logic_error("redis_server: already running");
    const char* exe = std::getenv("ASIO_FUTURES_REDIS_SERVER");
    std::vector<std::string> args{exe ? exe : "redis-server",
                                  "--port",
                                  std::to_string(port_),
                                  "--bind",
                                  "127.0.0.1",
                                  "--dir",
                                  dir_,
                                  "--appendonly",
                                  "yes",
                                  "--save",
                                  "",
                                  "--daemonize",
                                  "no",
                                  "--logfile",
                                  dir_ + "/redis.log"};
    args.insert(args.end(), extra_.begin(), extra_.end());
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0)
      throw std::runtime_error("redis_server: fork failed");
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent)
        ::_exit(127);
      ::execvp(argv[0], argv.data());
      ::_exit(127);
    }
    pid_ = pid;
    // Bounded readiness poll: connect and PING until it answers.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("redis_server: redis-server exited at start; log:\n" + log());
      }
      if (ping())
        return;
      std::this_thread::sleep_for(std::chrono::milliseconds(5)); // poll interval, not a sync
    }
    kill();
    throw std::runtime_error("redis_server: no PING answer within 10 s; log:\n" + log());
  }

  /// SIGTERM (Redis flushes its append-only file), then waits for the exit.
  void stop() { signal_and_reap(SIGTERM); }
  /// SIGKILL, then waits for the exit.
  void kill() { signal_and_reap(SIGKILL); }
  void restart() {
    stop();
    start();
  }
  bool running() const { return pid_ > 0; }
  /// SIGSTOP / SIGCONT: a server that keeps its sockets open but answers nothing (as a
  /// stuck or unreachable host) until resumed. The destructor's SIGKILL ends it either way.
  void pause() const {
    if (pid_ > 0)
      ::kill(pid_, SIGSTOP);
  }
  void resume() const {
    if (pid_ > 0)
      ::kill(pid_, SIGCONT);
  }

  /// A blocking command on a fresh connection; the reply flattened to text: strings,
  /// status and errors as they are, integers in decimal, nil as "(nil)", arrays as their
  /// elements separated by '\n'.
  std::string cli(const std::vector<std::string>& args, const std::string& password = {}) const {
    timeval tv{2, 0};
    std::unique_ptr<redisContext, void (*)(redisContext*)> c(
        redisConnectWithTimeout("127.0.0.1", port_, tv), &redisFree);
    if (!c || c->err)
      throw std::runtime_error("redis_server::cli: cannot connect");
    redisSetTimeout(c.get(), tv);
    if (!password.empty()) {
      auto* r = static_cast<redisReply*>(redisCommand(c.get(), "AUTH %s", password.c_str()));
      if (r)
        freeReplyObject(r);
    }
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    for (auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(
        redisCommandArgv(c.get(), static_cast<int>(args.size()), argv.data(), lens.data()));
    if (!r)
      throw std::runtime_error("redis_server::cli: no reply");
    std::string out = flatten(r);
    freeReplyObject(r);
    return out;
  }

  /// CLIENT KILL of every client whose name contains `part`; returns how many.
  int kill_clients(const std::string& part) const {
    std::istringstream list(cli({"CLIENT", "LIST"}));
    std::string line;
    int n = 0;
    while (std::getline(list, line)) {
      auto id_pos = line.find("id=");
      auto name_pos = line.find(" name=");
      if (id_pos == std::string::npos || name_pos == std::string::npos)
        continue;
      auto name = line.substr(name_pos + 6, line.find(' ', name_pos + 6) - (name_pos + 6));
      if (name.find(part) == std::string::npos)
        continue;
      auto id = line.substr(id_pos + 3, line.find(' ', id_pos) - (id_pos + 3));
      cli({"CLIENT", "KILL", "ID", id});
      ++n;
    }
    return n;
  }

  std::string log() const {
    std::ifstream in(dir_ + "/redis.log");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

private:
  static std::string flatten(const redisReply* r) {
    switch (r->type) {
    case REDIS_REPLY_INTEGER:
      return std::to_string(r->integer);
    case REDIS_REPLY_NIL:
      return "(nil)";
    case REDIS_REPLY_ARRAY: {
      std::string s;
      for (std::size_t i = 0; i < r->elements; ++i) {
        if (i)
          s += '\n';
        s += flatten(r->element[i]);
      }
      return s;
    }
    default:
      return std::string(r->str, r->len);
    }
  }

  bool ping() const {
    timeval tv{0, 200000};
    std::unique_ptr<redisContext, void (*)(redisContext*)> c(
        redisConnectWithTimeout("127.0.0.1", port_, tv), &redisFree);
    if (!c || c->err)
      return false;
    redisSetTimeout(c.get(), tv);
    auto* r = static_cast<redisReply*>(redisCommand(c.get(), "PING"));
    if (!r)
      return false;
    // With --requirepass the answer is a NOAUTH error: the server is up all the same.
    bool up = r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR;
    freeReplyObject(r);
    return up;
  }

  void signal_and_reap(int sig) {
    if (pid_ <= 0)
      return;
    ::kill(pid_, sig);
    // SIGTERM: Redis exits after flushing; bounded, then SIGKILL.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() >= deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2)); // poll interval
    }
    pid_ = -1;
  }

  static std::uint16_t free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      if (fd >= 0)
        ::close(fd);
      throw std::runtime_error("redis_server: no free port");
    }
    ::close(fd);
    return ntohs(a.sin_port);
  }

  std::vector<std::string> extra_;
  std::string dir_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

} // namespace asio_futures_test

#endif // ASIO_FUTURES_TEST_REDIS_SUPPORT_REDIS_SERVER_HPP
