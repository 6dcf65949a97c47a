/* Every group-profile and people operation's wire body. */
#include "harness.h"

#define WAIT_MS 20000

int main(void) {
    TrodoGroup *g;

    CHECK_OK(harness_init("profile"));
    CHECK_OK(trodo_identify("user-p"));
    g = trodo_get_group("company", "acme");
    CHECK(g != NULL);

    CHECK_OK(trodo_group_set(g, "{\"plan\":\"pro\",\"seats\":12}"));
    CHECK_OK(trodo_group_set_once(g, "{\"founded\":1999}"));
    CHECK_OK(trodo_group_union(g, "tags", "[\"b2b\",\"saas\"]"));
    CHECK_OK(trodo_group_remove(g, "tags", "\"legacy\""));
    CHECK_OK(trodo_group_append(g, "milestones", "{\"m\":1}"));
    CHECK_OK(trodo_group_increment(g, "seats", 1.5));
    CHECK_OK(trodo_group_unset(g, "trial"));
    CHECK_OK(trodo_group_delete(g));
    trodo_group_free(g);

    CHECK_OK(trodo_people_set("{\"name\":\"Ada\"}"));
    CHECK_OK(trodo_people_set_once("{\"first_seen\":\"2026\"}"));
    CHECK_OK(trodo_people_unset("old"));
    CHECK_OK(trodo_people_increment("logins", 1));
    CHECK_OK(trodo_people_append("visits", "[\"home\"]"));
    CHECK_OK(trodo_people_union("roles", "[\"admin\"]"));
    CHECK_OK(trodo_people_remove("roles", "[\"guest\"]"));
    CHECK_OK(trodo_people_track_charge(9.99, "{\"sku\":\"pro\"}"));
    CHECK_OK(trodo_people_track_charge(5, NULL));
    CHECK_OK(trodo_people_clear_charges());
    CHECK_OK(trodo_people_delete_user());
    CHECK_OK(trodo_flush(WAIT_MS));

#define ID "\"groupId\":\"acme\",\"groupKey\":\"company\""
#define WHO "\"siteId\":\"site-c\",\"userId\":\"user-p\""
    CHECK(log_count("/api/sdk/groups/profile/set", "{" ID ",\"properties\":{\"plan\":\"pro\",\"seats\":12}," WHO "}", (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/groups/profile/set_once", "{" ID ",\"properties\":{\"founded\":1999}," WHO "}", (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/groups/profile/union", "{" ID ",\"listName\":\"tags\"," WHO ",\"values\":[\"b2b\",\"saas\"]}", (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/groups/profile/remove", "{" ID ",\"listName\":\"tags\"," WHO ",\"value\":\"legacy\"}", (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/groups/profile/append", "{" ID ",\"property\":\"milestones\"," WHO ",\"value\":{\"m\":1}}", (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/groups/profile/increment", "{" ID ",\"property\":\"seats\"," WHO ",\"value\":1.5}", (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/groups/profile/unset", "{" ID ",\"property\":\"trial\"," WHO "}", (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/groups/profile/delete", "{" ID "," WHO "}", (char *)NULL) == 1);

    CHECK(log_count("/api/sdk/people/set", "{\"properties\":{\"name\":\"Ada\"}," WHO "}", (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/people/set_once", "{\"properties\":{\"first_seen\":\"2026\"}," WHO "}", (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/people/unset", "{\"keys\":[\"old\"]," WHO "}", (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/people/increment", "{\"amount\":1,\"key\":\"logins\"," WHO "}", (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/people/append", "{\"key\":\"visits\"," WHO ",\"values\":[\"home\"]}", (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/people/union", "{\"key\":\"roles\"," WHO ",\"values\":[\"admin\"]}", (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/people/remove", "{\"key\":\"roles\"," WHO ",\"values\":[\"guest\"]}", (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/people/track_charge", "{\"amount\":9.99,\"properties\":{\"sku\":\"pro\"}," WHO "}", (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/people/track_charge", "{\"amount\":5,\"properties\":{}," WHO "}", (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/people/clear_charges", "{" WHO "}", (char *)NULL) == 1);
    CHECK(log_count("/api/sdk/people/delete_user", "{" WHO "}", (char *)NULL) == 1);
    CHECK_OK(trodo_shutdown(WAIT_MS));
    return harness_finish("c_profile");
}
