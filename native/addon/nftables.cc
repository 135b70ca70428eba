// nftables without a process per call (issue 15): libnftables (the library
// the `nft` command is made of, same parser, same output) loaded with
// dlopen on first use. nftRun(args) takes nft's command-line arguments
// (-j, -e/--echo, -f FILE, then the command words, joined by spaces as nft
// joins them) and returns {code, stdout, stderr} as the command would;
// it throws when the library is missing or an argument is one it does not
// handle (then the caller runs the `nft` command instead).
// The context (and its netlink socket) is made per call, on the calling
// thread: the call acts in that thread's network namespace (a CNI server
// worker switched it with setns). One call at a time per process: the
// library keeps some process-wide state.
#include <napi.h>

#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>

#include <string>

#include "nftables.h"

namespace {

struct nft_ctx;
struct Lib {
  nft_ctx* (*ctx_new)(uint32_t);
  void (*ctx_free)(nft_ctx*);
  void (*output_set_flags)(nft_ctx*, unsigned int);
  int (*buffer_output)(nft_ctx*);
  int (*buffer_error)(nft_ctx*);
  const char* (*get_output)(nft_ctx*);
  const char* (*get_error)(nft_ctx*);
  int (*run_buffer)(nft_ctx*, const char*);
  int (*run_file)(nft_ctx*, const char*);
};

const unsigned int kOutputJson = 1u << 4;  // NFT_CTX_OUTPUT_JSON
const unsigned int kOutputEcho = 1u << 5;  // NFT_CTX_OUTPUT_ECHO

pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
Lib lib;
int loaded = 0;  // 0 not tried, 1 ok, -1 missing
std::string loadError;

bool Load() {
  if (loaded) return loaded > 0;
  void* h = dlopen("libnftables.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    loadError = dlerror();
    loaded = -1;
    return false;
  }
#define SYM(field, name)                                              \
  *reinterpret_cast<void**>(&lib.field) = dlsym(h, name);             \
  if (!lib.field) {                                                   \
    loadError = std::string("libnftables.so.1 has no ") + name;       \
    loaded = -1;                                                      \
    return false;                                                     \
  }
  SYM(ctx_new, "nft_ctx_new")
  SYM(ctx_free, "nft_ctx_free")
  SYM(output_set_flags, "nft_ctx_output_set_flags")
  SYM(buffer_output, "nft_ctx_buffer_output")
  SYM(buffer_error, "nft_ctx_buffer_error")
  SYM(get_output, "nft_ctx_get_output_buffer")
  SYM(get_error, "nft_ctx_get_error_buffer")
  SYM(run_buffer, "nft_run_cmd_from_buffer")
  SYM(run_file, "nft_run_cmd_from_filename")
#undef SYM
  loaded = 1;
  return true;
}

Napi::Value NftRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArray()) {
    Napi::TypeError::New(env, "nftRun(args: string[])").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array a = info[0].As<Napi::Array>();
  unsigned int flags = 0;
  std::string cmd, file;
  bool words = false;
  for (uint32_t i = 0; i < a.Length(); i++) {
    std::string s = a.Get(i).As<Napi::String>().Utf8Value();
    if (!words && s == "-j") flags |= kOutputJson;
    else if (!words && (s == "-e" || s == "--echo")) flags |= kOutputEcho;
    else if (!words && s == "-f" && i + 1 < a.Length()) file = a.Get(++i).As<Napi::String>().Utf8Value();
    else if (!words && !s.empty() && s[0] == '-') {
      Napi::Error e = Napi::Error::New(env, "nftRun: option " + s + " is not handled");
      e.Set("code", Napi::String::New(env, "ENOTSUP"));
      e.ThrowAsJavaScriptException();
      return env.Undefined();
    } else {
      if (words) cmd += ' ';
      cmd += s;
      words = true;
    }
  }
  pthread_mutex_lock(&mu);
  if (!Load()) {
    std::string msg = loadError;
    pthread_mutex_unlock(&mu);
    Napi::Error e = Napi::Error::New(env, "nftRun: " + msg);
    e.Set("code", Napi::String::New(env, "ENOLIB"));
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  nft_ctx* ctx = lib.ctx_new(0);
  if (!ctx) {
    pthread_mutex_unlock(&mu);
    Napi::Error e = Napi::Error::New(env, "nftRun: nft_ctx_new failed");
    e.Set("code", Napi::String::New(env, "ENOLIB"));
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  lib.output_set_flags(ctx, flags);
  lib.buffer_output(ctx);
  lib.buffer_error(ctx);
  int rc = file.empty() ? lib.run_buffer(ctx, cmd.c_str()) : lib.run_file(ctx, file.c_str());
  const char* out = lib.get_output(ctx);
  const char* err = lib.get_error(ctx);
  Napi::Object r = Napi::Object::New(env);
  r.Set("code", Napi::Number::New(env, rc == 0 ? 0 : 1));
  r.Set("stdout", Napi::String::New(env, out ? out : ""));
  r.Set("stderr", Napi::String::New(env, err ? err : ""));
  lib.ctx_free(ctx);
  pthread_mutex_unlock(&mu);
  return r;
}

}  // namespace

void InitNftables(Napi::Env env, Napi::Object exports) {
  exports.Set("nftRun", Napi::Function::New(env, NftRun, "nftRun"));
}
