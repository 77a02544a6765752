// Placeholder for the Brine web UI (embedded in the master binary).
"use strict";
