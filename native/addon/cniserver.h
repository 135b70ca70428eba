// The resident CNI server's socket functions (cniserver.cc).
#pragma once
#include <napi.h>

void InitCniServer(Napi::Env env, Napi::Object exports);
