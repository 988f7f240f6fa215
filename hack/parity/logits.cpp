// parity-logits: the llama.cpp side of the engine's parity test
// (inferd/engine/parity). hack/build-llama-cpp.sh compiles it against the
// llama.cpp it builds from the shared source snapshot.
//
//   parity-logits logits MODEL OUT [THREADS] < ids
//       Reads whitespace-separated token ids from stdin, evaluates them as one
//       sequence in a single batch with the logits of every position kept, and
//       writes them to OUT as little-endian float32, position by position
//       (n_tokens x n_vocab values). Prints "positions N vocab V" on stdout.
//       The KV cache is F32 and flash attention is off, as in the project's
//       engine, so the figures compare the weights' arithmetic, not a cache
//       rounded to F16.
//
//   parity-logits tokenize VOCAB ADD_SPECIAL < texts
//       Loads only the vocabulary of VOCAB (a GGUF), reads texts separated by
//       NUL bytes from stdin and prints one line of token ids per text, as
//       llama_tokenize returns them (ADD_SPECIAL 1 or 0: the BOS/EOS the
//       vocabulary asks for; control tokens in the text are not parsed).
//
// Exits 1 with a message on stderr on any failure. llama.cpp's own log goes to
// stderr only when PARITY_VERBOSE is set.
#include "llama.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

namespace {

void quiet_log(enum ggml_log_level level, const char *text, void *) {
    if (std::getenv("PARITY_VERBOSE") != nullptr || level == GGML_LOG_LEVEL_ERROR) {
        std::fputs(text, stderr);
    }
}

int fail(const std::string &msg) {
    std::fprintf(stderr, "parity-logits: %s\n", msg.c_str());
    return 1;
}

int run_logits(const char *model_path, const char *out_path, int threads) {
    std::vector<llama_token> ids;
    for (long id; std::cin >> id;) {
        ids.push_back(static_cast<llama_token>(id));
    }
    if (ids.empty()) {
        return fail("no token ids on stdin");
    }

    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    llama_model *model = llama_model_load_from_file(model_path, mp);
    if (model == nullptr) {
        return fail(std::string("cannot load ") + model_path);
    }
    const llama_vocab *vocab = llama_model_get_vocab(model);
    const int n_vocab = llama_vocab_n_tokens(vocab);
    for (llama_token id : ids) {
        if (id < 0 || id >= n_vocab) {
            return fail("token id " + std::to_string(id) + " is outside the vocabulary of " + std::to_string(n_vocab));
        }
    }

    const uint32_t n = static_cast<uint32_t>(ids.size());
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n;
    cp.n_batch = n;
    cp.n_ubatch = n;
    cp.n_seq_max = 1;
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    cp.type_k = GGML_TYPE_F32;
    cp.type_v = GGML_TYPE_F32;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.no_perf = true;
    llama_context *ctx = llama_init_from_model(model, cp);
    if (ctx == nullptr) {
        return fail("cannot create a context");
    }

    llama_batch batch = llama_batch_init(static_cast<int32_t>(n), 0, 1);
    for (uint32_t i = 0; i < n; i++) {
        batch.token[i] = ids[i];
        batch.pos[i] = static_cast<llama_pos>(i);
        batch.n_seq_id[i] = 1;
        batch.seq_id[i][0] = 0;
        batch.logits[i] = 1;
    }
    batch.n_tokens = static_cast<int32_t>(n);
    if (int rc = llama_decode(ctx, batch); rc != 0) {
        return fail("llama_decode returned " + std::to_string(rc));
    }

    FILE *out = std::fopen(out_path, "wb");
    if (out == nullptr) {
        return fail(std::string("cannot create ") + out_path);
    }
    for (uint32_t i = 0; i < n; i++) {
        const float *row = llama_get_logits_ith(ctx, static_cast<int32_t>(i));
        if (row == nullptr || std::fwrite(row, sizeof(float), n_vocab, out) != static_cast<size_t>(n_vocab)) {
            std::fclose(out);
            return fail("cannot write the logits of position " + std::to_string(i));
        }
    }
    if (std::fclose(out) != 0) {
        return fail(std::string("cannot write ") + out_path);
    }
    std::printf("positions %u vocab %d\n", n, n_vocab);

    llama_batch_free(batch);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}

int run_tokenize(const char *vocab_path, bool add_special) {
    std::string in((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    std::vector<std::string> texts;
    for (size_t start = 0;;) {
        size_t end = in.find('\0', start);
        if (end == std::string::npos) {
            texts.push_back(in.substr(start));
            break;
        }
        texts.push_back(in.substr(start, end - start));
        start = end + 1;
    }

    llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    llama_model *model = llama_model_load_from_file(vocab_path, mp);
    if (model == nullptr) {
        return fail(std::string("cannot load the vocabulary of ") + vocab_path);
    }
    const llama_vocab *vocab = llama_model_get_vocab(model);
    std::vector<llama_token> ids;
    for (const std::string &text : texts) {
        ids.resize(text.size() + 8);
        int n = llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), ids.data(),
                               static_cast<int32_t>(ids.size()), add_special, false);
        if (n < 0) {
            ids.resize(static_cast<size_t>(-n));
            n = llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), ids.data(),
                               static_cast<int32_t>(ids.size()), add_special, false);
        }
        if (n < 0) {
            return fail("llama_tokenize failed");
        }
        for (int i = 0; i < n; i++) {
            std::printf(i == 0 ? "%d" : " %d", ids[i]);
        }
        std::printf("\n");
    }
    llama_model_free(model);
    return 0;
}

}  // namespace

int main(int argc, char **argv) {
    llama_log_set(quiet_log, nullptr);
    llama_backend_init();
    int rc;
    if (argc >= 4 && std::strcmp(argv[1], "logits") == 0) {
        rc = run_logits(argv[2], argv[3], argc >= 5 ? std::atoi(argv[4]) : 2);
    } else if (argc == 4 && std::strcmp(argv[1], "tokenize") == 0) {
        rc = run_tokenize(argv[2], std::strcmp(argv[3], "1") == 0);
    } else {
        std::fprintf(stderr, "usage: %s logits MODEL OUT [THREADS] < ids\n       %s tokenize VOCAB ADD_SPECIAL < texts\n",
                     argv[0], argv[0]);
        rc = 2;
    }
    llama_backend_free();
    return rc;
}
