// Test helpers; filled in below.
