// The resident CNI server's socket side (plugins/pkg/cniserver): Node's net
// cannot receive file descriptors (SCM_RIGHTS) nor read the peer's
// credentials (SO_PEERCRED), so the listening socket, accept and the request
// reads live here, on native threads; each complete request is handed to JS
// through a thread-safe function and JS answers with cniReply().
//
// Wire format (native/cniclient/cniclient.c is the other end; same host, so
// native byte order):
//   request  = ReqHdr (sent with SCM_RIGHTS: fds[0] = the caller's netns,
//              fds[1] = CNI_NETNS when flags & 1) + name + env (KEY=VAL\0…)
//              + stdin
//   reply    = RepHdr + stdout + stderr
#include <napi.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <stdio.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <string>
#include <vector>

#include "cniserver.h"

namespace {

struct ReqHdr {
  char magic[8];  // "FLAXCNI1"
  uint32_t name_len;
  uint32_t env_len;
  uint64_t stdin_len;
  int32_t netns_errno;  // errno of the client's open(CNI_NETNS), 0 = opened or not tried
  uint32_t nfds;
  uint32_t flags;  // 1 = fds[1] is CNI_NETNS
  uint32_t reserved;
};
struct RepHdr {
  char magic[8];  // "FLAXCNR1"
  int32_t exit_code;
  uint32_t reserved;
  uint64_t stdout_len;
  uint64_t stderr_len;
};
static_assert(sizeof(ReqHdr) == 40, "ReqHdr layout");
static_assert(sizeof(RepHdr) == 32, "RepHdr layout");

const uint32_t kMaxName = 255;
const uint32_t kMaxEnv = 1 << 20;
const uint64_t kMaxStdin = 256ull << 20;
const int kMaxFds = 4;

struct Request {
  int conn = -1;
  uint32_t uid = 0;
  int32_t pid = 0;
  std::string name;
  std::vector<std::string> env;
  std::vector<char> stdin;
  std::vector<int> fds;
  uint32_t flags = 0;
  int32_t netns_errno = 0;
  std::string error;  // a malformed or cut request: JS only closes it
  bool empty = false;  // closed before its first byte (a client's readiness probe): closed, not logged
};

// Lives as long as the process (a few bytes per server started).
struct Server {
  int lfd = -1;
  Napi::ThreadSafeFunction tsfn;
  pthread_t acceptor;
  std::atomic<bool> stopped{false};
  // the listening socket is shared with whoever handed it over (systemd): never shut down,
  // the acceptor is woken by a connection of this process instead
  bool adopted = false;
};

int ReadFull(int fd, void* buf, size_t len) {
  char* p = static_cast<char*>(buf);
  while (len > 0) {
    ssize_t n = read(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return EPIPE;
    p += n;
    len -= static_cast<size_t>(n);
  }
  return 0;
}

int WriteFull(int fd, const void* buf, size_t len) {
  const char* p = static_cast<const char*>(buf);
  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    p += n;
    len -= static_cast<size_t>(n);
  }
  return 0;
}

// Reads the header with its SCM_RIGHTS fds (they ride on its first byte).
int ReadHeader(int fd, ReqHdr* h, std::vector<int>* fds) {
  char cbuf[CMSG_SPACE(sizeof(int) * kMaxFds)];
  struct iovec iov = {h, sizeof(*h)};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf;
  msg.msg_controllen = sizeof(cbuf);
  ssize_t n;
  do {
    n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno;
  if (n == 0) return -1;  // nothing sent at all
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    int* p = reinterpret_cast<int*>(CMSG_DATA(c));
    for (size_t i = 0; i < k; i++) fds->push_back(p[i]);
  }
  if (msg.msg_flags & MSG_CTRUNC) return EMSGSIZE;
  if (static_cast<size_t>(n) < sizeof(*h)) return ReadFull(fd, reinterpret_cast<char*>(h) + n, sizeof(*h) - n);
  return 0;
}

void ReadRequest(Request* r) {
  ReqHdr h;
  int err = ReadHeader(r->conn, &h, &r->fds);
  if (err == -1) {
    r->empty = true;
    r->error = "closed before a request";
    return;
  }
  if (err) { r->error = std::string("read request header: ") + strerror(err); return; }
  if (memcmp(h.magic, "FLAXCNI1", 8) != 0) { r->error = "bad request magic"; return; }
  if (h.name_len == 0 || h.name_len > kMaxName || h.env_len > kMaxEnv || h.stdin_len > kMaxStdin) {
    r->error = "request too large";
    return;
  }
  if (h.nfds != r->fds.size()) { r->error = "fd count mismatch"; return; }
  r->flags = h.flags;
  r->netns_errno = h.netns_errno;
  std::vector<char> buf(h.name_len + h.env_len);
  if ((err = ReadFull(r->conn, buf.data(), buf.size()))) { r->error = std::string("read request: ") + strerror(err); return; }
  r->name.assign(buf.data(), h.name_len);
  size_t start = h.name_len;
  for (size_t i = h.name_len; i < buf.size(); i++) {
    if (buf[i] == '\0') {
      r->env.emplace_back(buf.data() + start, i - start);
      start = i + 1;
    }
  }
  r->stdin.resize(h.stdin_len);
  if (h.stdin_len && (err = ReadFull(r->conn, r->stdin.data(), h.stdin_len))) {
    r->error = std::string("read request stdin: ") + strerror(err);
  }
}

struct ConnJob {
  Server* srv;
  Request* req;
};

void Deliver(Napi::Env env, Napi::Function cb, Request* r) {
  if (env != nullptr && cb != nullptr) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("conn", Napi::Number::New(env, r->conn));
    o.Set("uid", Napi::Number::New(env, r->uid));
    o.Set("pid", Napi::Number::New(env, r->pid));
    Napi::Array fds = Napi::Array::New(env, r->fds.size());
    for (size_t i = 0; i < r->fds.size(); i++) fds.Set(i, Napi::Number::New(env, r->fds[i]));
    o.Set("fds", fds);
    if (!r->error.empty()) {
      o.Set("error", Napi::String::New(env, r->error));
      if (r->empty) o.Set("empty", Napi::Boolean::New(env, true));
    } else {
      o.Set("name", Napi::String::New(env, r->name));
      Napi::Array ev = Napi::Array::New(env, r->env.size());
      for (size_t i = 0; i < r->env.size(); i++) ev.Set(i, Napi::String::New(env, r->env[i]));
      o.Set("env", ev);
      o.Set("stdin", Napi::Buffer<char>::Copy(env, r->stdin.data(), r->stdin.size()));
      o.Set("netnsFd", Napi::Boolean::New(env, (r->flags & 1) != 0));
      o.Set("netnsErrno", Napi::Number::New(env, r->netns_errno));
    }
    cb.Call({o});
  } else {  // the server is going away: nobody will answer
    for (int fd : r->fds) close(fd);
    close(r->conn);
  }
  delete r;
}

void* ConnThread(void* arg) {
  ConnJob* job = static_cast<ConnJob*>(arg);
  ReadRequest(job->req);
  if (job->srv->tsfn.BlockingCall(job->req, Deliver) != napi_ok) {
    for (int fd : job->req->fds) close(fd);
    close(job->req->conn);
    delete job->req;
  }
  job->srv->tsfn.Release();
  delete job;
  return nullptr;
}

void* AcceptThread(void* arg) {
  Server* srv = static_cast<Server*>(arg);
  for (;;) {
    int c = accept4(srv->lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE) {
        if (errno == EMFILE || errno == ENFILE) usleep(10000);
        continue;
      }
      if (srv->stopped) break;  // cniStop shut the socket down
      usleep(10000);
      continue;
    }
    struct timeval tv = {30, 0};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    Request* r = new Request();
    r->conn = c;
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
      if (srv->adopted && srv->stopped && cred.pid == getpid()) {  // cniStop's wake-up
        close(c);
        delete r;
        break;
      }
      r->uid = cred.uid;
      r->pid = cred.pid;
    } else {
      r->uid = UINT32_MAX;
    }
    if (r->uid != 0) r->error = "peer is not root";  // read nothing from it
    ConnJob* job = new ConnJob{srv, r};
    srv->tsfn.Acquire();
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (r->uid != 0 || pthread_create(&th, &attr, ConnThread, job) != 0) ConnThread(job);
    pthread_attr_destroy(&attr);
  }
  close(srv->lfd);
  srv->tsfn.Release();
  return nullptr;
}

Napi::Value Fail(Napi::Env env, int err, const char* syscall, const std::string& path) {
  std::string msg = std::string(syscall) + ": " + strerror(err) + " '" + path + "'";
  Napi::Error e = Napi::Error::New(env, msg);
  const char* name = strerrorname_np(err);
  e.Set("code", Napi::String::New(env, name ? name : "EUNKNOWN"));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

// cniListen(path, mode): a listening unix socket at path with that mode.
// Bound under a temporary name, chmod'ed, then renamed over path, so the
// socket never exists with a wider mode and a stale socket file is replaced;
// a path on which a server answers is EADDRINUSE.
Napi::Value CniListen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber()) {
    Napi::TypeError::New(env, "cniListen(path, mode)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  mode_t mode = info[1].As<Napi::Number>().Uint32Value();
  std::string tmp = path + ".tmp-" + std::to_string(getpid());
  struct sockaddr_un a = {};
  a.sun_family = AF_UNIX;
  if (tmp.size() >= sizeof(a.sun_path)) return Fail(env, ENAMETOOLONG, "bind", path);
  int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  memcpy(a.sun_path, path.c_str(), path.size() + 1);
  if (probe >= 0 && connect(probe, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
    close(probe);
    return Fail(env, EADDRINUSE, "bind", path);
  }
  if (probe >= 0) close(probe);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Fail(env, errno, "socket", path);
  memset(a.sun_path, 0, sizeof(a.sun_path));
  memcpy(a.sun_path, tmp.c_str(), tmp.size() + 1);
  unlink(tmp.c_str());
  const char* failed = nullptr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) failed = "bind";
  else if (chmod(tmp.c_str(), mode) != 0) failed = "chmod";
  else if (listen(fd, 512) != 0) failed = "listen";
  else if (rename(tmp.c_str(), path.c_str()) != 0) failed = "rename";
  if (failed) {
    int err = errno;
    close(fd);
    unlink(tmp.c_str());
    return Fail(env, err, failed, path);
  }
  return Napi::Number::New(env, fd);
}

// cniAdoptListener(fd, path): a listening socket handed over by systemd
// (LISTEN_FDS, socket activation) checked before it is served: a unix
// stream socket in the listening state, bound to path (the --cni-socket the
// clients call); marked close-on-exec so no exec'd plugin inherits it.
Napi::Value CniAdoptListener(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsString()) {
    Napi::TypeError::New(env, "cniAdoptListener(fd, path)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  std::string path = info[1].As<Napi::String>().Utf8Value();
  int v = 0;
  socklen_t len = sizeof(v);
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len) != 0) return Fail(env, errno, "getsockopt", path);
  if (v != AF_UNIX) return Fail(env, EAFNOSUPPORT, "getsockopt", path);
  len = sizeof(v);
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) != 0 || v != SOCK_STREAM) return Fail(env, ESOCKTNOSUPPORT, "getsockopt", path);
  len = sizeof(v);
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) != 0 || !v) return Fail(env, EINVAL, "listen", path);
  struct sockaddr_un a = {};
  len = sizeof(a);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return Fail(env, errno, "getsockname", path);
  size_t n = len > offsetof(struct sockaddr_un, sun_path) ? len - offsetof(struct sockaddr_un, sun_path) : 0;
  std::string bound(a.sun_path, strnlen(a.sun_path, n));
  if (bound != path) return Fail(env, EADDRNOTAVAIL, "getsockname", path + "' (the socket handed over is bound to '" + bound);
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) != 0) return Fail(env, errno, "fcntl", path);
  return Napi::Number::New(env, fd);
}

// cniServe(listenFd, onRequest): accepts on native threads; each request
// (or a refused / malformed one, with .error) is passed to onRequest.
// Returns a handle for cniStop(). Keeps the event loop alive until stopped.
Napi::Value CniServe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsFunction()) {
    Napi::TypeError::New(env, "cniServe(fd, onRequest)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Server* srv = new Server();
  srv->lfd = info[0].As<Napi::Number>().Int32Value();
  srv->adopted = info.Length() > 2 && info[2].IsBoolean() && info[2].As<Napi::Boolean>().Value();
  srv->tsfn = Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "flax-cniserver", 0, 1);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int err = pthread_create(&srv->acceptor, &attr, AcceptThread, srv);
  pthread_attr_destroy(&attr);
  if (err) {
    srv->tsfn.Release();
    delete srv;
    return Fail(env, err, "pthread_create", "");
  }
  return Napi::External<Server>::New(env, srv);
}

// cniStop(handle): stops accepting (requests already read are still delivered).
// cniExit(code): _exit(2) at once. After a drain that ran out of time a
// worker thread may be stuck in a call (a blocking flock, an exec): Node's
// own exit joins every worker thread and would wait for it forever.
Napi::Value CniExit(const Napi::CallbackInfo& info) {
  int code = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 0;
  fflush(nullptr);
  _exit(code);
  return info.Env().Undefined();
}

Napi::Value CniStop(const Napi::CallbackInfo& info) {
  Server* srv = info[0].As<Napi::External<Server>>().Data();
  if (srv->stopped.exchange(true)) return info.Env().Undefined();
  if (!srv->adopted) {
    shutdown(srv->lfd, SHUT_RDWR);
    return info.Env().Undefined();
  }
  // connections queued before this one are still accepted (and served: the drain); this one ends the loop
  struct sockaddr_un a = {};
  socklen_t len = sizeof(a);
  int w = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (w < 0 || getsockname(srv->lfd, reinterpret_cast<sockaddr*>(&a), &len) != 0 || connect(w, reinterpret_cast<sockaddr*>(&a), len) != 0) {
    shutdown(srv->lfd, SHUT_RDWR);  // cannot wake it otherwise
  }
  if (w >= 0) close(w);
  return info.Env().Undefined();
}

struct ReplyJob {
  int conn;
  std::vector<char> data;
};

void* ReplyThread(void* arg) {
  ReplyJob* job = static_cast<ReplyJob*>(arg);
  WriteFull(job->conn, job->data.data(), job->data.size());
  close(job->conn);
  delete job;
  return nullptr;
}

// cniReply(conn, stdout, stderr, exitCode): writes the reply and closes
// conn — at once when the socket takes it whole without waiting (a reply
// is small: nearly always), else the rest on a detached thread (a slow
// reader never blocks the calling thread). Callable from any JS thread.
Napi::Value CniReply(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int conn = info[0].As<Napi::Number>().Int32Value();
  Napi::Buffer<char> out = info[1].As<Napi::Buffer<char>>();
  Napi::Buffer<char> err = info[2].As<Napi::Buffer<char>>();
  RepHdr h = {};
  memcpy(h.magic, "FLAXCNR1", 8);
  h.exit_code = info[3].As<Napi::Number>().Int32Value();
  h.stdout_len = out.Length();
  h.stderr_len = err.Length();
  ReplyJob* job = new ReplyJob{conn, {}};
  job->data.reserve(sizeof(h) + out.Length() + err.Length());
  job->data.insert(job->data.end(), reinterpret_cast<char*>(&h), reinterpret_cast<char*>(&h) + sizeof(h));
  job->data.insert(job->data.end(), out.Data(), out.Data() + out.Length());
  job->data.insert(job->data.end(), err.Data(), err.Data() + err.Length());
  size_t sent = 0;
  while (sent < job->data.size()) {
    ssize_t w = send(conn, job->data.data() + sent, job->data.size() - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w > 0) {
      sent += static_cast<size_t>(w);
    } else if (w < 0 && errno == EINTR) {
      continue;
    } else {
      break;  // EAGAIN: the thread waits for the reader; another error: the thread's write fails the same way
    }
  }
  if (sent == job->data.size()) {
    close(conn);
    delete job;
    return env.Undefined();
  }
  job->data.erase(job->data.begin(), job->data.begin() + static_cast<std::ptrdiff_t>(sent));
  pthread_t th;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&th, &attr, ReplyThread, job) != 0) ReplyThread(job);
  pthread_attr_destroy(&attr);
  return env.Undefined();
}

}  // namespace

void InitCniServer(Napi::Env env, Napi::Object exports) {
  exports.Set("cniListen", Napi::Function::New(env, CniListen, "cniListen"));
  exports.Set("cniAdoptListener", Napi::Function::New(env, CniAdoptListener, "cniAdoptListener"));
  exports.Set("cniServe", Napi::Function::New(env, CniServe, "cniServe"));
  exports.Set("cniStop", Napi::Function::New(env, CniStop, "cniStop"));
  exports.Set("cniExit", Napi::Function::New(env, CniExit, "cniExit"));
  exports.Set("cniReply", Napi::Function::New(env, CniReply, "cniReply"));
}
