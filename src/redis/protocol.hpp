// The Redis layout shared by job_queue and worker (private to src/redis).
//
// For a queue named Q:
//   Q:jobs            the stream; entry fields: id, fn, payload, reply
//   Q:workers         its consumer group
//   Q:result:<id>     the stored outcome, SET NX with expiry: "v" + result bytes, or
//                     "e" + exception type + "\n" + message
//   Q:cancel:<id>     present when the caller cancelled the job (expiry as results)
//   Q:attempts:<id>   a hash, the deliveries so far: field <stream entry id> counts the
//                     deliveries of that entry, field "d:<stream entry id>:<token>" marks one
//                     delivery as counted (token: "<consumer>.<random>.<n>", one per pick-up)
//   Q:done:<client>   Pub/Sub: "<job id>\n<stored outcome>" when a result was stored, one
//                     channel per job_queue (a bare "<job id>" makes the caller GET it)
//   Q:cancel          Pub/Sub: ids of cancelled jobs, for the workers
#ifndef ASIO_FUTURES_SRC_REDIS_PROTOCOL_HPP
#define ASIO_FUTURES_SRC_REDIS_PROTOCOL_HPP

#include <asio_futures/redis/connection.hpp>
#include <asio_futures/redis/job_queue.hpp>

#include <exception>
#include <string>
#include <string_view>

namespace asio_futures::redis::detail {

struct keys {
  std::string q;
  std::string stream() const { return q + ":jobs"; }
  std::string group() const { return q + ":workers"; }
  std::string result(std::string_view id) const { return q + ":result:" + std::string(id); }
  std::string cancel(std::string_view id) const { return q + ":cancel:" + std::string(id); }
  std::string attempts(std::string_view id) const { return q + ":attempts:" + std::string(id); }
  std::string done_channel(std::string_view client) const {
    return q + ":done:" + std::string(client);
  }
  std::string cancel_channel() const { return q + ":cancel"; }
};

/// Run by a worker before a job: count the delivery, and tell whether the job was cancelled
/// or already has a result. One delivery is counted once, however often the script is sent
/// for it (a retry after a lost connection sends the same token), and per stream entry (a
/// job added twice, by a repeated submission, counts each entry's deliveries apart).
/// KEYS: attempts, cancel marker, result; ARGV: ttl (seconds), stream entry id, token.
/// Returns {attempts of this entry, cancelled (0/1), completed (0/1)}.
inline constexpr std::string_view begin_script = R"lua(
local a
if redis.call('HSETNX', KEYS[1], 'd:' .. ARGV[2] .. ':' .. ARGV[3], '1') == 1 then
  a = redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
else
  a = tonumber(redis.call('HGET', KEYS[1], ARGV[2]) or '1')
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return {a, redis.call('EXISTS', KEYS[2]), redis.call('EXISTS', KEYS[3])}
)lua";

/// Run by a stopping worker for each job it started and gives back: the delivery is not an
/// attempt (the job did not fail, its worker left). Idempotent: only a delivery still
/// counted is uncounted. KEYS: attempts; ARGV: stream entry id, token.
inline constexpr std::string_view release_script = R"lua(
if redis.call('HDEL', KEYS[1], 'd:' .. ARGV[1] .. ':' .. ARGV[2]) == 1 then
  redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
end
return 1
)lua";

/// Run by a worker after a job, atomically: with ARGV[1] == '1' store the outcome unless a
/// result exists (the first one wins) and announce "<job id>\n<stored outcome>" on the
/// caller's channel — the stored one, also when this run lost, so the message never
/// contradicts the key; then acknowledge and delete the entry and drop the attempts counter.
/// Idempotent. KEYS: result, stream, attempts; ARGV: store flag, outcome, ttl, reply channel,
/// job id, group, stream entry id.
inline constexpr std::string_view finish_script = R"lua(
if ARGV[1] == '1' then
  local stored = ARGV[2]
  if not redis.call('SET', KEYS[1], ARGV[2], 'NX', 'EX', ARGV[3]) then
    stored = redis.call('GET', KEYS[1]) or ARGV[2]
  end
  redis.call('PUBLISH', ARGV[4], ARGV[5] .. '\n' .. stored)
end
redis.call('XACK', KEYS[2], ARGV[6], ARGV[7])
redis.call('XDEL', KEYS[2], ARGV[7])
redis.call('DEL', KEYS[3])
return 1
)lua";

inline std::string encode_value(std::string_view v) {
  std::string s;
  s.reserve(v.size() + 1);
  s += 'v';
  s += v;
  return s;
}

inline std::string encode_error(std::string_view type, std::string_view message) {
  std::string s = "e";
  s += type;
  s += '\n';
  s += message;
  return s;
}

/// The stored outcome as a value or a remote_error.
inline std::string decode(const std::string& stored) {
  if (!stored.empty() && stored[0] == 'v')
    return stored.substr(1);
  if (!stored.empty() && stored[0] == 'e') {
    auto nl = stored.find('\n');
    if (nl != std::string::npos)
      throw remote_error(stored.substr(1, nl - 1), stored.substr(nl + 1));
  }
  throw remote_error("asio_futures::redis::protocol_error", "malformed stored result");
}

/// True if `e` holds a connection_error (the command may be retried after reconnecting).
inline bool is_connection_error(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const connection_error&) {
    return true;
  } catch (...) {
    return false;
  }
}

/// Throws std::invalid_argument for connection_options a connection refuses (connection.cpp):
/// a worker checks its options in its constructor, before its connections exist.
void validate(const connection_options& o);

/// A random hex string of 2 * bytes characters.
std::string random_hex(std::size_t bytes);

} // namespace asio_futures::redis::detail

#endif // ASIO_FUTURES_SRC_REDIS_PROTOCOL_HPP
