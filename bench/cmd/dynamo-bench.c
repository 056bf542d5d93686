/* stub: replaced by its owner */
#include "db_cmd.h"
int main(int argc, char **argv) { return db_cmd_run(argc, argv); }
