// Must NOT compile with -Werror=unused-result (ctest: status_nodiscard_*): Status and StatusOr
// are [[nodiscard]], so a dropped error is caught at compile time. DROP selects the case.
#include "common/status.h"

namespace kubemoe {

Status Save();
StatusOr<int> Load();

void Caller() {
#if DROP == 1
  Save();
#elif DROP == 2
  Load();
#else
#error "define DROP as 1 or 2"
#endif
}

}  // namespace kubemoe
