#!/usr/bin/env node
require('../dist/client.js');
