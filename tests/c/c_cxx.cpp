// The header used from C++ (its extern "C" guards), with RAII over the handle.
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "harness.h"

namespace {

struct GroupFree {
    void operator()(TrodoGroup *g) const { trodo_group_free(g); }
};
using GroupPtr = std::unique_ptr<TrodoGroup, GroupFree>;

std::string take(char *s) {
    std::string out = s ? s : "";
    trodo_string_free(s);
    return out;
}

const unsigned WAIT_MS = 20000;

}  // namespace

int main() {
    CHECK_OK(harness_init("cxx"));
    CHECK_OK(trodo_add_group("team", "team-a"));
    CHECK_OK(trodo_set_group("active_team", "team-a"));
    CHECK_OK(trodo_track("from_cpp", "{\"lang\":\"c++\"}"));
    CHECK(take(trodo_get_groups()) == "{\"active_team\":[\"team-a\"],\"team\":[\"team-a\"]}");
    {
        GroupPtr g(trodo_get_group("team", "team-a"));
        CHECK(g != nullptr);
        CHECK_OK(trodo_group_set(g.get(), "{\"name\":\"Team A\"}"));
    }
    GroupPtr missing(trodo_get_group("team", nullptr));
    CHECK(missing == nullptr);
    CHECK(std::string(trodo_last_error()).find("group_id") != std::string::npos);
    CHECK_OK(trodo_flush(WAIT_MS));
    CHECK(log_count("/api/events", "\"event_name\":\"from_cpp\"",
                    "{\"active_team\":[\"team-a\"],\"lang\":\"c++\",\"team\":[\"team-a\"]}",
                    static_cast<char *>(nullptr)) == 1);
    CHECK(log_count("/api/sdk/groups/profile/set", "\"name\":\"Team A\"", static_cast<char *>(nullptr)) == 1);
    CHECK_OK(trodo_shutdown(WAIT_MS));
    return harness_finish("c_cxx");
}
