/* The README's C quick start. Build (after `cargo build --release`):
 *   cc -std=c99 -Iinclude examples/quickstart.c -Ltarget/release -ltrodo \
 *      -Wl,-rpath,$PWD/target/release -o quickstart
 * The test suite compiles this file to keep it honest. */
#include <stdio.h>

#include "trodo.h"

int main(void) {
    TrodoGroup *company;
    char *groups;

    if (trodo_init("YOUR_SITE_ID", "{\"app_version\":\"1.0.0\"}") != TRODO_OK) {
        fprintf(stderr, "trodo_init: %s\n", trodo_last_error());
        return 1;
    }
    trodo_identify("user-123");

    /* Permanent memberships, and the workspace in use (drives attribution). */
    trodo_add_group("team", "team-a");
    trodo_set_group("active_team", "team-a");
    trodo_track("dashboard_viewed", "{\"widgets\":4}"); /* stamped with team + active_team */

    /* Properties on the group itself. */
    company = trodo_get_group("company", "acme");
    if (company != NULL) {
        trodo_group_set(company, "{\"plan\":\"enterprise\"}");
        trodo_group_free(company);
    }

    groups = trodo_get_groups(); /* {"active_team":["team-a"],"team":["team-a"]} */
    printf("groups: %s\n", groups ? groups : "(none)");
    trodo_string_free(groups);

    if (trodo_track("bad", "[1,2]") != TRODO_OK) {
        printf("refused: %s\n", trodo_last_error()); /* properties must be an object */
    }
    trodo_shutdown(5000); /* waits at most 5 s; what is unsent is reported */
    return 0;
}
