// idna.cc: UTS #46 processing for the URL parser (40_url.js), on ICU: the URL Standard's
// "domain to ASCII" and "domain to Unicode" with its options (CheckHyphens=false,
// CheckBidi=true, CheckJoiners=true, UseSTD3ASCIIRules=false, Transitional=false,
// VerifyDnsLength=false).
#include "runtime_int.h"

#include <string>

#include <unicode/uidna.h>

using v8::FunctionCallbackInfo;
using v8::Isolate;
using v8::Local;
using v8::String;
using v8::Value;

// The errors the URL Standard's options turn off.
static const uint32_t kIgnored = UIDNA_ERROR_EMPTY_LABEL | UIDNA_ERROR_LABEL_TOO_LONG |
                                 UIDNA_ERROR_DOMAIN_NAME_TOO_LONG | UIDNA_ERROR_LEADING_HYPHEN |
                                 UIDNA_ERROR_TRAILING_HYPHEN | UIDNA_ERROR_HYPHEN_3_4;

static const UIDNA *idna()
{
    static UIDNA *instance = [] {
        UErrorCode e = U_ZERO_ERROR;
        UIDNA *u = uidna_openUTS46(UIDNA_CHECK_BIDI | UIDNA_CHECK_CONTEXTJ |
                                       UIDNA_NONTRANSITIONAL_TO_ASCII |
                                       UIDNA_NONTRANSITIONAL_TO_UNICODE,
                                   &e);
        return U_SUCCESS(e) ? u : nullptr;
    }();
    return instance;
}

// domainToASCII(domain) -> the ASCII domain, or null on failure.
// domainToUnicode(domain) -> the Unicode domain (errors leave labels as they were).
template <bool kToAscii> static void Convert(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    const UIDNA *u = idna();
    if (u == nullptr || !args[0]->IsString())
        return args.GetReturnValue().SetNull();
    String::Value in(isolate, args[0]);
    std::u16string out(64, u'\0');
    for (int attempt = 0; attempt < 2; attempt++) {
        UErrorCode e = U_ZERO_ERROR;
        UIDNAInfo info = UIDNA_INFO_INITIALIZER;
        const UChar *src = reinterpret_cast<const UChar *>(*in);
        UChar *dst = reinterpret_cast<UChar *>(&out[0]);
        int32_t n =
            kToAscii
                ? uidna_nameToASCII(u, src, in.length(), dst, (int32_t)out.size(), &info, &e)
                : uidna_nameToUnicode(u, src, in.length(), dst, (int32_t)out.size(), &info, &e);
        if (e == U_BUFFER_OVERFLOW_ERROR) {
            out.assign((size_t)n + 1, u'\0');
            continue;
        }
        if (U_FAILURE(e) || (kToAscii && (info.errors & ~kIgnored) != 0))
            return args.GetReturnValue().SetNull();
        out.resize((size_t)n);
        args.GetReturnValue().Set(
            String::NewFromTwoByte(isolate, reinterpret_cast<const uint16_t *>(out.data()),
                                   v8::NewStringType::kNormal, (int)out.size())
                .ToLocalChecked());
        return;
    }
    args.GetReturnValue().SetNull();
}

static const rt_native kNatives[] = {
    {"domainToASCII", Convert<true>},
    {"domainToUnicode", Convert<false>},
};

const rt_native *rt_idna_natives(size_t *n)
{
    *n = sizeof kNatives / sizeof kNatives[0];
    return kNatives;
}
