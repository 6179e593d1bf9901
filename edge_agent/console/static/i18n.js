// Every label the console shows, in English and Simplified Chinese, and the locale's number and
// time formats. One flat dictionary per language, same keys in both: checkDictionaries() says
// at load which keys one side lacks, and t() marks a missing key as [[key]] on the page, so a
// forgotten translation is seen, not silently shown in English.

const en = {
  "app.title": "Edge Agent console",
  "nav.plant": "Plant",
  "nav.device": "Device",
  "nav.energy": "Energy",
  "nav.commissioning": "Commissioning",
  "nav.config": "Config",
  "nav.menu": "Menu",
  "header.logout": "Log out",
  "header.user": "User",
  "header.anonymous": "local",
  "header.lang": "Language",
  "live.stream": "Live",
  "live.polling": "Polling",
  "live.down": "No connection",
  "live.updated": "Updated {time}",
  "common.loading": "Loading…",
  "common.none": "None",
  "common.error": "Error: {text}",
  "common.retry": "Retry",
  "common.refresh": "Refresh",
  "common.unknown_page": "No such page.",
  "common.not_found": "Not found.",
  "common.permission": "You do not have permission for this page.",
  "common.request_failed": "The request failed ({status}).",
  "common.network": "The agent does not answer. Is it running?",
  "common.page_error": "The page could not show the answer ({message}); reload the page.",
  "common.ago": "{age} ago",
  "common.never": "never",
  "common.yes": "yes",
  "common.no": "no",
  "value.true": "true",
  "value.false": "false",
  "unit.s": "{n} s",
  "unit.min": "{n} min",
  "unit.h": "{n} h",
  "unit.d": "{n} d",
  "unit.ms": "{n} ms",
  "unit.per_s": "{n}/s",
  "unit.batches": "batches",
  "state.online": "online",
  "state.degraded": "degraded",
  "state.offline": "offline",
  "state.connecting": "connecting",
  "quality.good": "good",
  "quality.uncertain": "uncertain",
  "quality.bad": "bad",
  "quality.unknown": "no value yet",
  "machine.run": "run",
  "machine.idle": "idle",
  "machine.off": "off",
  "machine.fault": "fault",
  "machine.unknown": "unknown",
  "plant.title": "Plant",
  "plant.healthy": "All good",
  "plant.unhealthy": "Needs attention",
  "plant.some_down": "{count} not online",
  "plant.devices": "Devices",
  "plant.sinks": "Sinks",
  "plant.outbox": "Outbox",
  "plant.no_devices": "No devices in the configuration.",
  "plant.no_sinks": "No sinks in the configuration.",
  "plant.no_outbox": "No outbox: the plant file has no sinks, so nothing is published or kept.",
  "plant.summary": "{online} of {total} devices online",
  "plant.uptime": "Up {time}",
  "plant.version": "Version {version}",
  "col.device": "Device",
  "col.driver": "Driver",
  "col.state": "State",
  "col.since": "Since",
  "col.last_good": "Last good read",
  "col.reason": "Reason",
  "col.reads_per_s": "Reads/s",
  "col.polls": "Polls",
  "col.failed": "Failed",
  "col.tags": "Tags",
  "col.key_value": "Key value",
  "col.trend": "Trend",
  "col.sink": "Sink",
  "col.kind": "Kind",
  "col.status": "Status",
  "col.backlog": "Backlog",
  "col.oldest": "Oldest undelivered",
  "col.dropped": "Dropped",
  "col.sent": "Sent",
  "col.last_error": "Last error",
  "col.tag": "Tag",
  "col.value": "Value",
  "col.unit": "Unit",
  "col.quality": "Quality",
  "col.time": "Source time",
  "col.when": "Time",
  "col.source": "Source",
  "col.type": "Type",
  "col.kind_event": "Kind",
  "col.text": "Event",
  "col.level": "Level",
  "col.logger": "Logger",
  "col.message": "Message",
  "col.fields": "Details",
  "col.shift": "Shift",
  "col.start": "Start",
  "col.end": "End",
  "col.energy_kwh": "Energy (kWh)",
  "col.kgce": "kgce",
  "col.kgco2e": "kgCO2e",
  "col.address": "Address",
  "col.hex": "Hex",
  "col.decimal": "Decimal",
  "col.binary": "Binary",
  "col.byte_order": "Byte order",
  "com.order_col": "Byte order",
  "col.scale": "Scale",
  "col.chance": "By chance",
  "col.rank": "#",
  "col.raw": "Raw",
  "col.group": "Group",
  "sink.connected": "connected",
  "sink.failing": "failing",
  "sink.disconnected": "disconnected",
  "outbox.use": "{used} of {budget} ({pct})",
  "outbox.lost": "Lost batches: {n}",
  "outbox.path": "Path",
  "outbox.dropped": "Dropped batches (budget full): {n}",
  "outbox.not_writing": "The outbox cannot write to its disk.",
  "device.title": "Device",
  "device.pick": "Pick a device on the Plant page.",
  "device.unknown": "No device named “{name}”.",
  "device.template": "Template",
  "device.type": "Device type",
  "device.driver": "Driver",
  "device.since": "State since",
  "device.last_good": "Last good read",
  "device.reason": "Reason",
  "device.tags": "Tags",
  "write.title": "Write",
  "write.hint": "Each write goes through the agent's write policy and is audited; a dry run checks it without writing.",
  "write.value": "Value",
  "write.dry_run": "Dry run",
  "write.send": "Send",
  "write.sending": "Sending…",
  "write.locked": "Writable from the console: sign in as a user with writes: true (service.console.users).",
  "write.no_users": "This console has no users (a look on loopback only), so nobody writes here.",
  "write.min": "min {n}",
  "write.max": "max {n}",
  "write.step": "step {n}",
  "write.allowed": "one of {values}",
  "write.read_back": "read back {value}",
  "write.outcome.refused": "Refused",
  "write.outcome.dry_run": "Dry run: allowed, nothing written",
  "write.outcome.applied": "Applied",
  "write.outcome.mismatch": "Written, but the value read back differs",
  "write.outcome.failed": "The device refused the write",
  "write.outcome.not_applied": "Not applied",
  "write.outcome.unknown": "Outcome unknown",
  "device.filter": "Filter tags",
  "device.filter_count": "{shown} of {total}",
  "device.events": "Recent events",
  "device.no_events": "No errors or state changes recorded.",
  "device.failures": "Most frequent read failures",
  "col.count": "Count",
  "device.chart": "History of {tag}",
  "device.chart_hint": "Click a numeric tag to chart its recent history.",
  "device.chart_empty": "No history kept for this tag yet.",
  "device.chart_close": "Close chart",
  "device.back": "All devices",
  "event.state": "state",
  "event.error": "error",
  "event.was": "(was {previous})",
  "energy.title": "Energy and production",
  "energy.date": "{date} ({tz})",
  "energy.meters": "Meters",
  "energy.machines": "Machines",
  "energy.no_meters": "No energy meters configured.",
  "energy.no_machines": "No machines configured.",
  "energy.unavailable": "Energy metrics are not available on this agent.",
  "energy.today": "Today",
  "energy.demand": "Demand now",
  "energy.peak": "Peak demand",
  "energy.peak_at": "at {time}",
  "energy.kgce": "Standard coal",
  "energy.kgco2e": "CO2 emitted",
  "energy.bars": "15-minute demand (kW)",
  "energy.peak_marker": "Peak",
  "energy.shifts": "Shifts",
  "energy.no_blocks": "No 15-minute block closed yet today.",
  "energy.open": "running",
  "energy.plant_kind": "plant total",
  "energy.meter_kind": "meter",
  "energy.block_title": "{start}–{end}: {kw} kW",
  "energy.reports": "Reports",
  "energy.no_reports": "No report yet: the agent makes one when a day or a shift ends.",
  "energy.report_daily": "Day",
  "energy.report_shift": "Shift",
  "energy.reports_more": "Older reports: edge-agent report --list",
  "energy.cost_today": "Cost today",
  "energy.peak_share": "Peak share today",
  "energy.total": "Total",
  "energy.cost_heading": "Cost by time-of-use period ({currency})",
  "energy.cost_heading_running": "Cost by time-of-use period ({currency}): today and the running shift {shift}",
  "energy.cost_heading_last": "Cost by time-of-use period ({currency}): today and the last shift {shift}",
  "col.period": "Period",
  "col.price": "Price per kWh",
  "col.kwh_today": "kWh today",
  "col.cost_today": "Cost today",
  "col.kwh_shift": "kWh shift",
  "col.cost_shift": "Cost shift",
  "period.critical_peak": "critical peak",
  "period.peak": "peak",
  "period.flat": "flat",
  "period.valley": "valley",
  "period.deep_valley": "deep valley",
  "energy.month_peak": "Month's peak demand",
  "energy.peak_on": "on {time}",
  "energy.guard": "Demand guard: this 15-minute block",
  "guard.over": "above the limit",
  "guard.within": "within the limit",
  "guard.waiting": "no prediction yet",
  "energy.guard_predicted": "Predicted block demand",
  "energy.guard_shed": "Load to shed",
  "energy.guard_left": "Time left in block",
  "energy.guard_limit_contracted": "contracted limit {kw} kW",
  "energy.guard_limit_target": "target limit {kw} kW",
  "energy.guard_since": "above since {time}",
  "energy.guard_block_end": "block ends {time}",
  "energy.events": "Events today",
  "energy.no_events": "No event today.",
  "energy.event_active": "active",
  "col.severity": "Severity",
  "col.event": "Event",
  "severity.critical": "critical",
  "severity.warning": "warning",
  "severity.info": "info",
  "severity.unknown": "unknown",
  "eventtype.demand_limit": "demand limit",
  "eventtype.idle_energy": "idle energy",
  "eventtype.meter_stalled": "meter stalled",
  "energy.carriers": "Other energy carriers",
  "col.meter": "Meter",
  "col.carrier": "Carrier",
  "col.amount_today": "Today",
  "carrier.electricity": "electricity",
  "carrier.natural_gas": "natural gas",
  "carrier.steam": "steam",
  "carrier.heat": "heat",
  "carrier.compressed_air": "compressed air",
  "carrier.water_new": "fresh water",
  "carrier.water_softened": "softened water",
  "carrier.water_deaerated": "deaerated water",
  "carrier.oxygen": "oxygen",
  "carrier.nitrogen": "nitrogen",
  "carrier.diesel": "diesel",
  "carrier.gasoline": "gasoline",
  "carrier.lpg": "liquefied petroleum gas",
  "carrier.fuel_oil": "fuel oil",
  "carrier.raw_coal": "raw coal",
  "energy.savings": "Savings against baseline",
  "col.baseline": "Baseline",
  "col.fit": "Fit",
  "col.avoided_kwh_today": "Avoided today (kWh)",
  "col.avoided_kgce_today": "Avoided today (kgce)",
  "col.avoided_kgco2e_today": "Avoided today (kgCO2e)",
  "col.cumulative_kwh": "Avoided in all (kWh)",
  "col.cumulative_kgce": "Avoided in all (kgce)",
  "col.kwh_per_part": "kWh per good part",
  "col.kwh_per_hour": "kWh per operating hour",
  "fit.valid": "valid",
  "fit.invalid": "not valid",
  "fit.none": "not fitted",
  "energy.fit_figures": "R2 {r2} · CV(RMSE) {cv} · {n} windows",
  "energy.savings_windows": "{counted} of {windows} windows ({window}) today",
  "note.guard_no_reading": "No reading of {subject} with power in this 15-minute block yet: no prediction.",
  "note.total_unpriced": "Not every meter of {subject} has a tariff: its cost is not shown.",
  "note.carrier_no_co2": "{subject} has no CO2 factor configured: no kgCO2e.",
  "plant.events": "Events now",
  "plant.no_events": "No event is active.",
  "note.metrics_off": "The plant file has no metrics section: there are no energy or production figures.",
  "note.started_today": "The agent started at {time}: today's demand bars and state bands begin then.",
  "note.blocks_unpublished": "15m is not in metrics.windows: the bars are the agent's own 15-minute blocks, not sent to the sinks.",
  "note.no_shifts": "No shifts are configured.",
  "note.shift_windows_off": "shift is not in metrics.windows: no energy per shift is computed.",
  "note.timeline_truncated": "Many state changes today: the band of {subject} starts at {time}.",
  "oee.utilization": "Utilization",
  "oee.availability": "Availability",
  "oee.effectiveness": "Performance",
  "oee.quality": "Quality",
  "oee.oee": "OEE",
  "machine.energy_today": "Energy today",
  "machine.kwh_per_part": "kWh per good part",
  "machine.idle_energy": "Idle energy",
  "machine.parts": "Parts good / made",
  "machine.timeline": "State today",
  "machine.legend": "Legend",
  "com.title": "Commissioning",
  "com.off": "Commissioning is switched off in the configuration.",
  "com.read_title": "Read registers",
  "com.read_hint": "Read registers straight from a device, and see every decoding side by side.",
  "com.target": "Target",
  "com.target_hint": "tcp://host:502 or rtu:///dev/ttyUSB0?baud=9600",
  "com.unit": "Unit id",
  "com.table": "Table",
  "com.address": "Address",
  "com.count": "Count",
  "com.type": "Type",
  "com.byte_order": "Byte order",
  "com.any": "all",
  "com.read": "Read",
  "com.probe": "Probe",
  "com.expect": "Expected value",
  "com.expect_low": "From",
  "com.expect_high": "To",
  "com.probe_hint": "Give the range the value should be in: probe ranks the decodings that fall in it.",
  "com.registers": "Registers",
  "com.decodings": "Decodings",
  "com.candidates": "Likeliest decodings",
  "com.no_candidates": "No decoding falls in the range.",
  "com.no_decodings": "No decoding fits these registers.",
  "com.more": "{n} more in range.",
  "com.tag_yaml": "As a tag in the plant file",
  "com.lines": "As the command line prints it",
  "com.one_in": "1 in {n}",
  "com.never": "never",
  "com.almost_always": "almost always",
  "com.elapsed": "Answered in {ms}",
  "com.failed": "The read failed",
  "com.hint": "Hint",
  "com.running": "Asking the device…",
  "com.once_title": "Read a device once",
  "com.once_hint": "Reads every poll group of one configured device once, as run --once does.",
  "com.device": "Device",
  "com.once": "Read once",
  "com.once_good": "All tags good",
  "com.once_bad": "Some tags are not good",
  "com.bad_input": "Check the form: {field}.",
  "table.holding": "holding registers",
  "table.input": "input registers",
  "table.coil": "coils",
  "table.discrete_input": "discrete inputs",
  "config.title": "Config and service",
  "config.service": "Service",
  "config.version": "Version",
  "config.uptime": "Uptime",
  "config.started": "Started",
  "config.file": "Config file",
  "config.reload": "Last reload",
  "config.reload_never": "No reload since start.",
  "config.applied": "Applied",
  "config.refused": "Refused",
  "config.problems": "Problems in the last refused reload",
  "config.no_problems": "The last reload had no problems.",
  "config.text": "Running configuration (secrets shown as ******)",
  "config.log": "Recent warnings and errors",
  "config.no_log": "No warnings or errors since start.",
  "level.warning": "warning",
  "level.error": "error",
  "login.title": "Sign in",
  "login.subtitle": "Edge Agent console",
  "login.user": "User",
  "login.password": "Password",
  "login.submit": "Sign in",
  "login.failed": "Wrong user or password.",
  "login.rate": "Too many attempts. Try again in {s} s.",
  "login.error": "Sign-in failed ({status}).",
  "login.not_needed": "No sign-in needed here.",
  "login.open": "Open the console",
};

const zh = {
  "app.title": "边缘采集控制台",
  "nav.plant": "工厂",
  "nav.device": "设备",
  "nav.energy": "能源",
  "nav.commissioning": "调试",
  "nav.config": "配置",
  "nav.menu": "菜单",
  "header.logout": "退出",
  "header.user": "用户",
  "header.anonymous": "本机",
  "header.lang": "语言",
  "live.stream": "实时",
  "live.polling": "轮询",
  "live.down": "连接中断",
  "live.updated": "更新于 {time}",
  "common.loading": "加载中…",
  "common.none": "无",
  "common.error": "错误：{text}",
  "common.retry": "重试",
  "common.refresh": "刷新",
  "common.unknown_page": "页面不存在。",
  "common.not_found": "未找到。",
  "common.permission": "您没有访问此页面的权限。",
  "common.request_failed": "请求失败（{status}）。",
  "common.network": "采集程序无响应，请确认它在运行。",
  "common.page_error": "页面无法显示结果（{message}），请刷新页面。",
  "common.ago": "{age}前",
  "common.never": "从未",
  "common.yes": "是",
  "common.no": "否",
  "value.true": "真",
  "value.false": "假",
  "unit.s": "{n} 秒",
  "unit.min": "{n} 分钟",
  "unit.h": "{n} 小时",
  "unit.d": "{n} 天",
  "unit.ms": "{n} 毫秒",
  "unit.per_s": "{n}/秒",
  "unit.batches": "批",
  "state.online": "在线",
  "state.degraded": "降级",
  "state.offline": "离线",
  "state.connecting": "连接中",
  "quality.good": "良好",
  "quality.uncertain": "不确定",
  "quality.bad": "坏值",
  "quality.unknown": "暂无数值",
  "machine.run": "运行",
  "machine.idle": "空闲",
  "machine.off": "停机",
  "machine.fault": "故障",
  "machine.unknown": "未知",
  "plant.title": "工厂",
  "plant.healthy": "全部正常",
  "plant.unhealthy": "需要关注",
  "plant.some_down": "{count} 台设备不在线",
  "plant.devices": "设备",
  "plant.sinks": "数据出口",
  "plant.outbox": "发件箱",
  "plant.no_devices": "配置中没有设备。",
  "plant.no_sinks": "配置中没有数据出口。",
  "plant.no_outbox": "没有发件箱：配置中没有数据出口，数据不发布也不保存。",
  "plant.summary": "{total} 台设备中 {online} 台在线",
  "plant.uptime": "已运行 {time}",
  "plant.version": "版本 {version}",
  "col.device": "设备",
  "col.driver": "驱动",
  "col.state": "状态",
  "col.since": "起始时间",
  "col.last_good": "最近成功读取",
  "col.reason": "原因",
  "col.reads_per_s": "读取/秒",
  "col.polls": "轮询次数",
  "col.failed": "失败",
  "col.tags": "点位",
  "col.key_value": "关键值",
  "col.trend": "趋势",
  "col.sink": "数据出口",
  "col.kind": "类型",
  "col.status": "状态",
  "col.backlog": "积压",
  "col.oldest": "最早未送达",
  "col.dropped": "丢弃",
  "col.sent": "已发送",
  "col.last_error": "最近错误",
  "col.tag": "点位",
  "col.value": "数值",
  "col.unit": "单位",
  "col.quality": "质量",
  "col.time": "源时间",
  "col.when": "时间",
  "col.source": "来源",
  "col.type": "类型",
  "col.kind_event": "类别",
  "col.text": "事件",
  "col.level": "级别",
  "col.logger": "模块",
  "col.message": "消息",
  "col.fields": "详情",
  "col.shift": "班次",
  "col.start": "开始",
  "col.end": "结束",
  "col.energy_kwh": "电量（kWh）",
  "col.kgce": "标准煤（kgce）",
  "col.kgco2e": "碳排放（kgCO2e）",
  "col.address": "地址",
  "col.hex": "十六进制",
  "col.decimal": "十进制",
  "col.binary": "二进制",
  "col.byte_order": "字节序",
  "com.order_col": "字节序",
  "col.scale": "倍率",
  "col.chance": "偶然概率",
  "col.rank": "序号",
  "col.raw": "原始值",
  "col.group": "轮询组",
  "sink.connected": "已连接",
  "sink.failing": "发送失败",
  "sink.disconnected": "未连接",
  "outbox.use": "{budget} 中已用 {used}（{pct}）",
  "outbox.lost": "丢失批次：{n}",
  "outbox.path": "路径",
  "outbox.dropped": "因容量已满丢弃的批次：{n}",
  "outbox.not_writing": "发件箱无法写入磁盘。",
  "device.title": "设备",
  "device.pick": "请在工厂页面选择一台设备。",
  "device.unknown": "没有名为“{name}”的设备。",
  "device.template": "模板",
  "device.type": "设备类型",
  "device.driver": "驱动",
  "device.since": "状态起始",
  "device.last_good": "最近成功读取",
  "device.reason": "原因",
  "device.tags": "点位",
  "write.title": "写入",
  "write.hint": "每次写入都经过代理的写入策略检查并记入审计日志；试运行只检查，不写入。",
  "write.value": "值",
  "write.dry_run": "试运行",
  "write.send": "发送",
  "write.sending": "发送中…",
  "write.locked": "可从控制台写入：请以设置了 writes: true 的用户登录（service.console.users）。",
  "write.no_users": "此控制台没有用户（仅在本机回环上查看），因此无人可在此写入。",
  "write.min": "最小 {n}",
  "write.max": "最大 {n}",
  "write.step": "步长 {n}",
  "write.allowed": "可选 {values}",
  "write.read_back": "回读 {value}",
  "write.outcome.refused": "已拒绝",
  "write.outcome.dry_run": "试运行：允许，未写入",
  "write.outcome.applied": "已生效",
  "write.outcome.mismatch": "已写入，但回读值不同",
  "write.outcome.failed": "设备拒绝了写入",
  "write.outcome.not_applied": "未生效",
  "write.outcome.unknown": "结果未知",
  "device.filter": "筛选点位",
  "device.filter_count": "{shown} / {total}",
  "device.events": "最近事件",
  "device.no_events": "没有错误或状态变化记录。",
  "device.failures": "最常见的读取失败",
  "col.count": "次数",
  "device.chart": "{tag} 的历史曲线",
  "device.chart_hint": "点击数值型点位可查看其近期历史曲线。",
  "device.chart_empty": "该点位暂无历史数据。",
  "device.chart_close": "关闭曲线",
  "device.back": "全部设备",
  "event.state": "状态",
  "event.error": "错误",
  "event.was": "（之前：{previous}）",
  "energy.title": "能源与生产",
  "energy.date": "{date}（{tz}）",
  "energy.meters": "电表",
  "energy.machines": "机台",
  "energy.no_meters": "未配置电表。",
  "energy.no_machines": "未配置机台。",
  "energy.unavailable": "此采集程序未提供能源指标。",
  "energy.today": "今日用电",
  "energy.demand": "当前需量",
  "energy.peak": "最大需量",
  "energy.peak_at": "于 {time}",
  "energy.kgce": "折标准煤",
  "energy.kgco2e": "二氧化碳排放",
  "energy.bars": "15 分钟需量（kW）",
  "energy.peak_marker": "峰值",
  "energy.shifts": "班次",
  "energy.no_blocks": "今天还没有结束的 15 分钟时段。",
  "energy.open": "进行中",
  "energy.plant_kind": "全厂合计",
  "energy.meter_kind": "电表",
  "energy.block_title": "{start}–{end}：{kw} kW",
  "energy.reports": "报表",
  "energy.no_reports": "暂无报表：每天或每班结束时生成。",
  "energy.report_daily": "日报",
  "energy.report_shift": "班报",
  "energy.reports_more": "更早的报表：edge-agent report --list",
  "energy.cost_today": "今日电费",
  "energy.peak_share": "今日峰段电量占比",
  "energy.total": "合计",
  "energy.cost_heading": "分时电费（{currency}）",
  "energy.cost_heading_running": "分时电费（{currency}）：今日及当前班次 {shift}",
  "energy.cost_heading_last": "分时电费（{currency}）：今日及上一班次 {shift}",
  "col.period": "时段",
  "col.price": "电价（每 kWh）",
  "col.kwh_today": "今日 kWh",
  "col.cost_today": "今日电费",
  "col.kwh_shift": "本班 kWh",
  "col.cost_shift": "本班电费",
  "period.critical_peak": "尖峰",
  "period.peak": "高峰",
  "period.flat": "平段",
  "period.valley": "低谷",
  "period.deep_valley": "深谷",
  "energy.month_peak": "本月最大需量",
  "energy.peak_on": "于 {time}",
  "energy.guard": "需量监控：当前 15 分钟时段",
  "guard.over": "超出限值",
  "guard.within": "未超限值",
  "guard.waiting": "暂无预测",
  "energy.guard_predicted": "预测时段需量",
  "energy.guard_shed": "需削减负荷",
  "energy.guard_left": "时段剩余时间",
  "energy.guard_limit_contracted": "合同限值 {kw} kW",
  "energy.guard_limit_target": "目标限值 {kw} kW",
  "energy.guard_since": "自 {time} 起超限",
  "energy.guard_block_end": "时段于 {time} 结束",
  "energy.events": "今日事件",
  "energy.no_events": "今天没有事件。",
  "energy.event_active": "进行中",
  "col.severity": "级别",
  "col.event": "事件",
  "severity.critical": "严重",
  "severity.warning": "警告",
  "severity.info": "提示",
  "severity.unknown": "未知",
  "eventtype.demand_limit": "需量超限",
  "eventtype.idle_energy": "空闲耗能",
  "eventtype.meter_stalled": "电表停走",
  "energy.carriers": "其他能源",
  "col.meter": "计量表",
  "col.carrier": "能源种类",
  "col.amount_today": "今日用量",
  "carrier.electricity": "电力",
  "carrier.natural_gas": "天然气",
  "carrier.steam": "蒸汽",
  "carrier.heat": "热力",
  "carrier.compressed_air": "压缩空气",
  "carrier.water_new": "新水",
  "carrier.water_softened": "软化水",
  "carrier.water_deaerated": "除氧水",
  "carrier.oxygen": "氧气",
  "carrier.nitrogen": "氮气",
  "carrier.diesel": "柴油",
  "carrier.gasoline": "汽油",
  "carrier.lpg": "液化石油气",
  "carrier.fuel_oil": "燃料油",
  "carrier.raw_coal": "原煤",
  "energy.savings": "节能量（对比基准）",
  "col.baseline": "能耗基准",
  "col.fit": "拟合",
  "col.avoided_kwh_today": "今日节约（kWh）",
  "col.avoided_kgce_today": "今日节约（kgce）",
  "col.avoided_kgco2e_today": "今日减排（kgCO2e）",
  "col.cumulative_kwh": "累计节约（kWh）",
  "col.cumulative_kgce": "累计节约（kgce）",
  "col.kwh_per_part": "单件良品电耗（kWh）",
  "col.kwh_per_hour": "每运行小时电耗（kWh）",
  "fit.valid": "有效",
  "fit.invalid": "无效",
  "fit.none": "未拟合",
  "energy.fit_figures": "R2 {r2} · CV(RMSE) {cv} · {n} 个时段",
  "energy.savings_windows": "今日 {windows} 个时段（{window}）中 {counted} 个",
  "note.guard_no_reading": "本 15 分钟时段尚无 {subject} 的功率读数：暂无预测。",
  "note.total_unpriced": "{subject} 并非每块电表都配置了电价：不显示其电费。",
  "note.carrier_no_co2": "{subject} 未配置二氧化碳排放因子：无 kgCO2e。",
  "plant.events": "当前事件",
  "plant.no_events": "没有进行中的事件。",
  "note.metrics_off": "配置文件中没有 metrics 部分：没有能源和生产数据。",
  "note.started_today": "采集程序于 {time} 启动：今天的需量柱和状态带从此时开始。",
  "note.blocks_unpublished": "metrics.windows 中没有 15m：需量柱是程序自己的 15 分钟时段，未发送到数据出口。",
  "note.no_shifts": "未配置班次。",
  "note.shift_windows_off": "metrics.windows 中没有 shift：不计算各班次电量。",
  "note.timeline_truncated": "今天状态变化过多：{subject} 的状态带从 {time} 开始。",
  "oee.utilization": "利用率",
  "oee.availability": "时间开动率",
  "oee.effectiveness": "性能开动率",
  "oee.quality": "合格品率",
  "oee.oee": "设备综合效率",
  "machine.energy_today": "今日用电",
  "machine.kwh_per_part": "单件良品电耗（kWh）",
  "machine.idle_energy": "空闲电耗",
  "machine.parts": "良品 / 产量",
  "machine.timeline": "今日状态",
  "machine.legend": "图例",
  "com.title": "调试",
  "com.off": "配置中已关闭调试功能。",
  "com.read_title": "读取寄存器",
  "com.read_hint": "直接从设备读取寄存器，并列出所有解码结果以便对比。",
  "com.target": "目标",
  "com.target_hint": "tcp://主机:502 或 rtu:///dev/ttyUSB0?baud=9600",
  "com.unit": "从站地址",
  "com.table": "寄存器区",
  "com.address": "地址",
  "com.count": "数量",
  "com.type": "数据类型",
  "com.byte_order": "字节序",
  "com.any": "全部",
  "com.read": "读取",
  "com.probe": "探测",
  "com.expect": "期望值",
  "com.expect_low": "从",
  "com.expect_high": "到",
  "com.probe_hint": "填写数值应在的范围：探测会对落在范围内的解码结果排序。",
  "com.registers": "寄存器",
  "com.decodings": "解码结果",
  "com.candidates": "最可能的解码",
  "com.no_candidates": "没有解码结果落在该范围内。",
  "com.no_decodings": "这些寄存器没有合适的解码。",
  "com.more": "范围内还有 {n} 个。",
  "com.tag_yaml": "写入配置文件的点位",
  "com.lines": "命令行输出",
  "com.one_in": "{n} 分之一",
  "com.never": "从不",
  "com.almost_always": "几乎总是",
  "com.elapsed": "响应用时 {ms}",
  "com.failed": "读取失败",
  "com.hint": "提示",
  "com.running": "正在询问设备…",
  "com.once_title": "单次读取设备",
  "com.once_hint": "对一台已配置设备的每个轮询组各读取一次，与 run --once 相同。",
  "com.device": "设备",
  "com.once": "读取一次",
  "com.once_good": "全部点位良好",
  "com.once_bad": "部分点位不良",
  "com.bad_input": "请检查表单：{field}。",
  "table.holding": "保持寄存器",
  "table.input": "输入寄存器",
  "table.coil": "线圈",
  "table.discrete_input": "离散输入",
  "config.title": "配置与服务",
  "config.service": "服务",
  "config.version": "版本",
  "config.uptime": "运行时长",
  "config.started": "启动时间",
  "config.file": "配置文件",
  "config.reload": "最近一次重新加载",
  "config.reload_never": "启动后未重新加载。",
  "config.applied": "已应用",
  "config.refused": "已拒绝",
  "config.problems": "最近一次被拒绝的重新加载中的问题",
  "config.no_problems": "最近一次重新加载没有问题。",
  "config.text": "运行中的配置（密钥显示为 ******）",
  "config.log": "最近的警告和错误",
  "config.no_log": "启动以来没有警告或错误。",
  "level.warning": "警告",
  "level.error": "错误",
  "login.title": "登录",
  "login.subtitle": "边缘采集控制台",
  "login.user": "用户名",
  "login.password": "密码",
  "login.submit": "登录",
  "login.failed": "用户名或密码错误。",
  "login.rate": "尝试次数过多，请 {s} 秒后再试。",
  "login.error": "登录失败（{status}）。",
  "login.not_needed": "此处无需登录。",
  "login.open": "打开控制台",
};

export const dictionaries = { en, zh };
const locales = { en: "en-US", zh: "zh-CN" };

let current = "en";
const reported = new Set();

/** Keys one dictionary has and the other lacks, as "zh lacks key" strings. */
export function checkDictionaries() {
  const problems = [];
  for (const [a, b] of [["en", "zh"], ["zh", "en"]]) {
    for (const key of Object.keys(dictionaries[a])) {
      if (!(key in dictionaries[b])) problems.push(`${b} lacks ${key}`);
    }
  }
  return problems;
}

for (const problem of checkDictionaries()) console.error(`i18n: ${problem}`);

export function setLang(lang) {
  current = lang === "zh" ? "zh" : "en";
  document.documentElement.lang = locales[current];
}

export function getLang() {
  return current;
}

export function locale() {
  return locales[current];
}

/** The label for key in the current language, with {name} replaced from params. */
export function t(key, params) {
  let text = dictionaries[current][key];
  if (text === undefined) {
    if (!reported.has(key)) {
      reported.add(key);
      console.error(`i18n: no ${current} text for ${key}`);
    }
    return `[[${key}]]`;
  }
  if (params) {
    text = text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
  }
  return text;
}

/**
 * The label split around its {name} parameters: [text, {param: name}, text, ...], so a page can
 * put data (a device or tag name) in its own untranslated element inside a translated sentence.
 */
export function parts(key) {
  const text = t(key);
  const out = [];
  let last = 0;
  for (const match of text.matchAll(/\{(\w+)\}/g)) {
    if (match.index > last) out.push(text.slice(last, match.index));
    out.push({ param: match[1] });
    last = match.index + match[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

/** Fill every data-i18n* element under root with the current language's labels. */
export function applyI18n(root) {
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const attr of ["placeholder", "title", "aria-label"]) {
    const data = `data-i18n-${attr}`;
    for (const node of root.querySelectorAll(`[${data}]`)) node.setAttribute(attr, t(node.getAttribute(data)));
  }
}

// ------------------------------------------------------------------ numbers and times

const numberFormats = new Map();

function numberFormat(options) {
  const id = `${current}|${JSON.stringify(options)}`;
  let format = numberFormats.get(id);
  if (!format) {
    format = new Intl.NumberFormat(locales[current], options);
    numberFormats.set(id, format);
  }
  return format;
}

export const DASH = "–";

function known(value) {
  return typeof value === "number" && Number.isFinite(value);
}

/** A number with exactly `digits` decimals in the locale's format; "–" when not known. */
export function fmtFixed(value, digits) {
  if (!known(value)) return DASH;
  return numberFormat({ minimumFractionDigits: digits, maximumFractionDigits: digits }).format(value);
}

/**
 * A measured value: integers as such (unless the tag is a float: 9 kW reads as 9.000 beside
 * its neighbours), other numbers with 1 to 4 decimals by size.
 */
export function fmtValue(value, isFloat = false) {
  if (value === null || value === undefined) return DASH;
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value !== "number") return String(value);
  if (!Number.isFinite(value)) return String(value);
  if (Number.isInteger(value) && !isFloat) return numberFormat({ maximumFractionDigits: 0 }).format(value);
  const magnitude = Math.abs(value);
  // Below 1, four significant digits: fixed decimals would show 0.00004 as 0.0000.
  if (magnitude > 0 && magnitude < 1) return numberFormat({ maximumSignificantDigits: 4 }).format(value);
  const digits = magnitude >= 1000 ? 1 : magnitude >= 100 ? 2 : magnitude >= 1 ? 3 : 4;
  return numberFormat({ minimumFractionDigits: digits, maximumFractionDigits: digits }).format(value);
}

/** An energy figure as the agent published it, to a precision that suits its size. */
export function fmtFigure(value) {
  if (!known(value)) return DASH;
  const magnitude = Math.abs(value);
  return fmtFixed(value, magnitude >= 1000 ? 0 : magnitude >= 100 ? 1 : magnitude >= 1 ? 2 : 3);
}

export function fmtInt(value) {
  if (!known(value)) return DASH;
  return numberFormat({ maximumFractionDigits: 0 }).format(value);
}

export function fmtPct(ratio, digits = 1) {
  if (!known(ratio)) return DASH;
  return numberFormat({ style: "percent", minimumFractionDigits: digits, maximumFractionDigits: digits }).format(ratio);
}

export function fmtBytes(bytes) {
  if (!known(bytes)) return DASH;
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${fmtFixed(value, unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/** A span of seconds in words: "42 s", "3 min", "5 h 12 min", "2 d 3 h". */
export function fmtDuration(seconds) {
  if (!known(seconds)) return DASH;
  const s = Math.max(0, seconds);
  if (s < 60) return t("unit.s", { n: fmtInt(Math.floor(s)) });
  if (s < 3600) return t("unit.min", { n: fmtInt(Math.floor(s / 60)) });
  if (s < 86400) {
    const h = Math.floor(s / 3600);
    return `${t("unit.h", { n: fmtInt(h) })} ${t("unit.min", { n: fmtInt(Math.floor((s - h * 3600) / 60)) })}`;
  }
  const d = Math.floor(s / 86400);
  return `${t("unit.d", { n: fmtInt(d) })} ${t("unit.h", { n: fmtInt(Math.floor((s - d * 86400) / 3600)) })}`;
}

/** Seconds since an ISO time (or Unix seconds) until now; null when there is none. */
export function ageOf(time) {
  const ms = toMs(time);
  return ms === null ? null : Math.max(0, (Date.now() - ms) / 1000);
}

export function fmtAge(time) {
  const age = ageOf(time);
  if (age === null) return t("common.never");
  return t("common.ago", { age: fmtDuration(age) });
}

export function toMs(time) {
  if (time === null || time === undefined || time === "") return null;
  if (typeof time === "number") return time * 1000;
  const ms = Date.parse(time);
  return Number.isNaN(ms) ? null : ms;
}

const timeFormats = new Map();

function timeFormat(kind, timeZone) {
  const id = `${current}|${kind}|${timeZone || ""}`;
  let format = timeFormats.get(id);
  if (!format) {
    const options = {
      time: { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" },
      clock: { hour: "2-digit", minute: "2-digit", hourCycle: "h23" },
      datetime: {
        year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
      },
    }[kind];
    if (timeZone) options.timeZone = timeZone;
    format = new Intl.DateTimeFormat(locales[current], options);
    timeFormats.set(id, format);
  }
  return format;
}

/** Time of day with milliseconds (source times): "20:31:00.123". */
export function fmtTimeMs(time) {
  const ms = toMs(time);
  if (ms === null) return DASH;
  return `${timeFormat("time").format(ms)}.${String(Math.floor(ms % 1000)).padStart(3, "0")}`;
}

export function fmtTime(time, timeZone) {
  const ms = toMs(time);
  return ms === null ? DASH : timeFormat("time", timeZone).format(ms);
}

export function fmtClock(time, timeZone) {
  const ms = toMs(time);
  return ms === null ? DASH : timeFormat("clock", timeZone).format(ms);
}

/** Date and time as 2026-12-04 20:31:00 in every language: no month/day order to guess. */
export function fmtDateTime(time, timeZone) {
  const ms = toMs(time);
  if (ms === null) return DASH;
  const parts = {};
  for (const part of timeFormat("datetime", timeZone).formatToParts(ms)) parts[part.type] = part.value;
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second}`;
}
