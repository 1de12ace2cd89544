"""The run report's words in English and Chinese: headings, column names, captions and the
sentences a section shows when the run has nothing to show there.

One dictionary per language with the same keys (a test checks it), so a section never shows a
key from the other language.
"""

from __future__ import annotations

LANGUAGES = ("en", "zh")

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "title": "custscore run report",
        "run": "Run",
        "as_of": "As of",
        "published_at": "Published (UTC)",
        "data_source": "Data",
        "customers": "Customers scored",
        "contents": "Contents",
        "not_measured": "Not measured for this run",
        "colon": ": ",
        "by_segment": "By segment", "by_value_tier": "By value tier",
        # sections
        "data_quality": "Data quality",
        "models": "Models against their baselines",
        "segments": "Segments",
        "pareto": "Value concentration (Pareto) and tiers A/B/C",
        "calibration": "Churn calibration",
        "distributions": "Score distributions against the last run",
        "drift": "Drift of the inputs",
        "transitions": "Segment transitions and top movers",
        "backtest": "Latest backtest",
        "actions": "Action list: whom to call first",
        "waterfalls": "Why the top at-risk accounts may leave",
        # data quality
        "table": "table", "read": "read", "accepted": "accepted", "duplicates_kept": "exact duplicates kept",
        "quarantined": "quarantined", "reasons": "quarantine reasons", "warnings": "warnings",
        "no_input_rows": "the run's metadata records no input counts (a run published without them)",
        # models
        "kind": "model", "version": "version", "grade": "grade", "metric": "metric", "model_value": "champion",
        "baseline_value": "rule baseline", "models_caption": "Out-of-time validation figures the champion was promoted on "
        "(MLflow), beside the rule baseline measured on the same rows. Grades: A beats the baseline clearly, C barely.",
        "no_validation": "the validation figures are not readable here (MLflow has no run for this model version); "
                         "the grade is the one recorded when the run was published",
        # segments
        "segment": "segment", "label": "label", "n_customers": "customers", "share": "share of customers", "share_current": "share of current value",
        "share_predicted": "share of predicted value", "mean_p_churn": "mean p_churn",
        # pareto
        "pareto_caption": "Customers sorted by predicted value ({value}), highest first: the curve is the share of all "
                          "positive value they bring. Tier A ends where {a:.0%} of the value is reached, B at {b:.0%}.",
        "pareto_x": "share of customers", "pareto_y": "share of positive value",
        "tier_a": "A: {share:.1%} of customers", "tier_b": "A+B: {share:.1%} of customers",
        "no_positive_value": "no customer has a positive predicted value, so there is no curve to draw",
        # calibration
        "calibration_validation": "At promotion (validation, out of time)",
        "calibration_realised": "Realised (backtest of this run)",
        "calibration_caption": "Points on the diagonal mean a predicted 30% churn risk leaves 30% of the time.",
        "no_calibration_plot": "the champion's validation calibration plot is not readable here (no MLflow run)",
        "no_realised_calibration": "the run's horizon has not passed yet, so no realised calibration; the backtest "
                                   "of this run fills it once the churn horizon lies before the newest data",
        "predicted": "mean predicted p_churn", "observed": "observed churn rate", "perfect": "perfect",
        # distributions
        "this_run": "this run", "last_run": "last run ({run})", "p_churn": "p_churn (churn risk)",
        "clv": "clv (predicted value)", "count": "customers",
        "p_churn_short": "p_churn", "clv_short": "clv", "mean": "mean", "median": "median",
        "no_previous_run": "this is the first published run: the distributions are shown alone",
        # drift
        "no_drift": "no drift table: drift is measured by scoring runs that compare the inputs with the champion's "
                    "training data, and this run has none",
        "feature": "feature", "psi": "PSI", "drift_caption": "Population stability index per feature (0.1: a shift "
        "worth a look, 0.25: a large one), missing shares and categories, most shifted first.",
        # transitions
        "no_transitions": "no transition table: it needs a previous run to compare with, and this run has none",
        "no_movers": "no score changes: they need a previous run to compare with, and this run has none",
        "from_to": "from \\ to", "top_movers": "Top movers", "why": "why",
        # backtest
        "no_backtest": "no run up to this one has been backtested: a run is backtested once its horizons have passed "
                       "(`custscore backtest --run-id {run}`)",
        "backtest_of": "The scores of run {run} (as of {as_of}) against what its customers then did.",
        # actions
        "no_actions": "no action list for this run: the ranking of retention calls was not computed",
        # waterfalls
        "waterfall_caption": "The published churn reasons of each account, in the model's log-odds: the bars start "
                             "from the customer's log-odds without these reasons (the average customer, every other "
                             "feature and the calibration together, shown by shap as E[f(X)]) and end at the "
                             "published p_churn.",
        "no_at_risk": "no customer is in the at_risk segment, so no waterfall",
        "no_explanations": "the run published no churn reasons for its at-risk accounts",
        "customer": "customer", "start_label": "without these reasons",
        "footer": "Written by custscore. Every figure is drawn from the published run; nothing is fetched when the "
                  "file is opened.",
    },
    "zh": {
        "title": "custscore 运行报告",
        "run": "运行",
        "as_of": "评分日期",
        "published_at": "发布时间 (UTC)",
        "data_source": "数据",
        "customers": "评分客户数",
        "contents": "目录",
        "not_measured": "本次运行未测量",
        "colon": "：",
        "by_segment": "按分群", "by_value_tier": "按价值等级",
        "data_quality": "数据质量",
        "models": "模型与基线对比",
        "segments": "客户分群",
        "pareto": "价值集中度（帕累托）与 A/B/C 等级",
        "calibration": "流失概率校准",
        "distributions": "评分分布与上次运行对比",
        "drift": "输入数据漂移",
        "transitions": "分群迁移与变化最大的客户",
        "backtest": "最近一次回测",
        "actions": "行动清单：先联系谁",
        "waterfalls": "高风险重点客户可能流失的原因",
        "table": "数据表", "read": "读取", "accepted": "接受", "duplicates_kept": "保留的完全重复行",
        "quarantined": "隔离", "reasons": "隔离原因", "warnings": "警告",
        "no_input_rows": "本次运行的元数据没有记录输入行数（发布时未包含）",
        "kind": "模型", "version": "版本", "grade": "等级", "metric": "指标", "model_value": "冠军模型",
        "baseline_value": "规则基线", "models_caption": "冠军模型晋升时的跨时间验证指标（MLflow），与同一批数据上的规则基线对比。"
        "等级 A 表示明显优于基线，C 表示勉强优于基线。",
        "no_validation": "此处无法读取验证指标（MLflow 中没有该模型版本的运行）；等级为发布时记录的等级",
        "segment": "分群", "label": "名称", "n_customers": "客户数", "share": "客户占比", "share_current": "当前价值占比",
        "share_predicted": "预测价值占比", "mean_p_churn": "平均流失概率",
        "pareto_caption": "客户按预测价值（{value}）从高到低排序：曲线表示他们贡献的正价值占比。"
                          "A 级截止于价值累计达到 {a:.0%} 处，B 级截止于 {b:.0%} 处。",
        "pareto_x": "客户占比", "pareto_y": "正价值占比",
        "tier_a": "A：{share:.1%} 的客户", "tier_b": "A+B：{share:.1%} 的客户",
        "no_positive_value": "没有客户的预测价值为正，因此无法绘制曲线",
        "calibration_validation": "晋升时（跨时间验证）",
        "calibration_realised": "实际结果（本次运行的回测）",
        "calibration_caption": "点落在对角线上表示：预测 30% 流失风险的客户中确有 30% 流失。",
        "no_calibration_plot": "此处无法读取冠军模型的验证校准图（没有 MLflow 运行）",
        "no_realised_calibration": "本次运行的预测期尚未结束，因此没有实际校准；当流失预测期早于最新数据时，"
                                   "本次运行的回测会补上这一部分",
        "predicted": "平均预测流失概率", "observed": "实际流失率", "perfect": "完美校准",
        "this_run": "本次运行", "last_run": "上次运行（{run}）", "p_churn": "流失概率 p_churn",
        "clv": "客户终身价值 clv", "count": "客户数",
        "p_churn_short": "流失概率", "clv_short": "客户终身价值", "mean": "均值", "median": "中位数",
        "no_previous_run": "这是第一次发布的运行：仅显示本次分布",
        "no_drift": "没有漂移表：漂移由评分运行将输入与冠军模型的训练数据对比得出，本次运行没有该表",
        "feature": "特征", "psi": "PSI", "drift_caption": "各特征的群体稳定性指数（0.1：值得关注的偏移，0.25：大幅偏移）、"
        "缺失占比与类别变化，偏移最大的在前。",
        "no_transitions": "没有迁移表：需要与上一次运行对比，本次运行没有该表",
        "no_movers": "没有评分变化：需要与上一次运行对比，本次运行没有该表",
        "from_to": "从 \\ 到", "top_movers": "变化最大的客户", "why": "原因",
        "no_backtest": "截至本次运行尚无回测：运行的预测期结束后才会回测（`custscore backtest --run-id {run}`）",
        "backtest_of": "运行 {run}（评分日 {as_of}）的评分与客户随后实际行为的对比。",
        "no_actions": "本次运行没有行动清单：未计算挽留联系的排序",
        "waterfall_caption": "每个客户已发布的流失原因，单位为模型的对数几率：条形从不含这些原因时的对数几率开始"
                             "（平均客户、其他所有特征与校准的合计，shap 标为 E[f(X)]），到已发布的流失概率结束。",
        "no_at_risk": "没有客户属于高风险（at_risk）分群，因此没有瀑布图",
        "no_explanations": "本次运行没有为高风险客户发布流失原因",
        "customer": "客户", "start_label": "不含这些原因",
        "footer": "由 custscore 生成。所有图表均来自已发布的运行；打开文件时不会联网获取任何内容。",
    },
}


# The tables the report shows as they are stored (drift, backtest, score changes, the action list)
# keep their stored column names in English, where a reader finds them again in the store and the
# API; in Chinese each is named in words.
COLUMN_NAMES_ZH: dict[str, str] = {
    # drift
    "name": "名称", "kind": "类型", "psi": "PSI", "level": "程度", "missing_ref": "参考期缺失占比",
    "missing_now": "本次缺失占比", "new_categories": "新出现的类别", "vanished_categories": "消失的类别",
    "customers": "客户数",
    # backtest
    "score": "评分", "metric": "指标", "group_by": "分组维度", "group": "分组", "status": "状态",
    "predicted": "预测值", "realised": "实际值", "value": "数值", "validation": "晋升时验证值",
    "horizon_days": "预测期（天）", "window_end": "预测期结束", "data_end": "数据截止",
    # score changes
    "customer_id": "客户编号", "segment_before": "上次分群", "segment_after": "本次分群",
    "p_churn_before": "上次流失概率", "p_churn_after": "本次流失概率", "sentence_zh": "原因",
    # action list
    "rank": "排名", "owner": "负责人", "owner_rank": "负责人内排名", "p_churn": "流失概率",
    "value_at_stake": "可能流失的价值", "save_rate": "挽回率", "offer_cost": "挽留成本",
    "expected_saved_value": "预计挽回价值", "expected_gain": "预计净收益", "cumulative_offer_cost": "累计挽留成本",
    "cumulative_gain": "累计净收益", "value_tier": "价值等级", "segment": "分群",
    "churn_reason_features": "流失原因涉及的特征", "reason_to_call_zh": "联系理由",
}  # fmt: skip

# Category values the tables hold as codes, in Chinese: by the column that holds them. Segment
# names come from the run's own labels (segments.yaml) where the run has them; these are the defaults.
CATEGORY_NAMES_ZH: dict[str, dict[str, str]] = {
    "segment": {"most_valuable": "最有价值客户", "growth": "成长客户", "at_risk": "流失预警客户",
                "negative_value": "负值客户", "new": "新客户", "regular": "普通客户"},
    "value_tier": {"A": "A 级", "B": "B 级", "C": "C 级"},
    "score": {"churn": "流失", "value": "价值"},
    "kind": {"feature": "特征", "score": "评分", "churn": "流失", "value": "价值"},
    "level": {"ok": "正常", "warn": "值得关注", "severe": "严重", "constant": "所有客户同一值"},
    "group_by": {"all": "全体", "decile": "十分位", "segment": "分群", "value_tier": "价值等级"},
    "group": {"all": "全体"},
    "status": {"measured": "已测量", "pending": "待测量"},
    "table": {"transactions": "交易", "customers": "客户", "invoices": "发票", "interactions": "互动"},
    "metric": {
        "roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "brier": "Brier 分数", "ece": "期望校准误差 (ECE)",
        "capture_top_decile": "前10%客户捕获的流失占比", "churn_rate": "流失率",
        "normalized_gini": "归一化基尼系数", "spearman": "斯皮尔曼相关系数", "top_10pct_capture": "前10%客户捕获的价值占比",
        "top10_capture": "前10%客户捕获的价值占比", "top20_capture": "前20%客户捕获的价值占比",
        "aggregate_bias_pct": "总量偏差（%）", "revenue_per_customer": "人均收入",
    },
}  # fmt: skip
# Columns holding the codes of another column's categories.
CATEGORY_OF_COLUMN = {"segment_before": "segment", "segment_after": "segment"}


def text_for(lang: str) -> dict[str, str]:
    """The words of one language; an unknown language is a one-line error naming the choices."""
    if lang not in TEXT:
        raise ValueError(f"--lang {lang!r}: the report is written in {' or '.join(LANGUAGES)}; pass one of them")
    return TEXT[lang]
